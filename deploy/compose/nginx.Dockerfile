# nginx with the RTMP module from Debian, as the local stack uses it.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-rtmp curl \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/hls && chmod 777 /var/hls
COPY deploy/compose/nginx.conf /etc/nginx/nginx.conf
EXPOSE 1935 8081
CMD ["nginx"]

"""The load: Locust users (viewers on the epoll reactor, HLS players, API clients), the
ffmpeg broadcasters and their publishers, and the rows workers ship to the master."""

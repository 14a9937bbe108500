"""Locust users: viewers (WebSocket, optional HLS) and open-model API arrivals. They meet the
rest of the harness only through `environment.nova` (a UserContext)."""

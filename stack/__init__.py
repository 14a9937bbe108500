"""The reference Nova stack: an aiohttp service speaking the Nova contract, and its launcher."""

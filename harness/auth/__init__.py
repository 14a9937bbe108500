"""Tokens: minting (HS256/RS256, broken tokens for the security checks), the signing
keys of the local stack or a scenario, and tokens from a target's login endpoint."""

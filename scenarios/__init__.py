"""Benefit scenarios (信易+): what a venue grants to which tiers. The full registry arrives with issue 4."""

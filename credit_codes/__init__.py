"""Signed QR credit codes (信用码), their verification by venues, and redemption of benefits (核销)."""

"""A bus gate (信易行): 20% off the fare for common level 优秀 (Very good) and above, up to six rides a day.

The gate decides offline first (no network needed to open the gate) and reports the ride online when
it can: the redemption enforces the daily quota exactly, across all gates of the city.

    python examples/bus_gate.py --id 420202197201247944
"""

from __future__ import annotations

from _demo import run, scanned_code, venue_client

from citycredit_partner import CodeRejectedError, PartnerError

SCENARIO = "bus-fare-discount"
MIN_TIER_LEVEL = 4  # from the scenario table; a real gate downloads it with its configuration
FARE_CENTS = 200


def main() -> None:
    code = scanned_code(__doc__ or "")
    with venue_client() as city:
        try:
            offline = city.verify_offline(code)
        except CodeRejectedError as exc:
            print(f"✗ 请刷新信用码 / refresh the code ({exc.reason})")
            return
        fare = FARE_CENTS * 8 // 10 if offline.qualifies(MIN_TIER_LEVEL) else FARE_CENTS
        print(f"票价 fare: ¥{fare / 100:.2f}  (通用等级 common level {offline.tier_level})")
        if fare == FARE_CENTS:
            return
        try:
            ride = city.redeem(code, SCENARIO)
            print(f"优惠已记录 / discount recorded ({ride.id})")
        except PartnerError as exc:
            # Offline-first: the ride goes ahead; the back office reconciles refused redemptions.
            print(f"优惠未能记录 / not recorded ({exc}); full fare applies next time")


if __name__ == "__main__":
    run(main)

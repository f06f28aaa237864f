"""A power-bank kiosk (信易租): three hours free, no deposit, for common level 良好 (Good) and above, twice a day.

python examples/power_bank_kiosk.py --id 420202197201247944
"""

from __future__ import annotations

from _demo import run, scanned_code, venue_client

from citycredit_partner import (
    AlreadyRedeemedError,
    CodeRejectedError,
    NotEligibleError,
    QuotaExhaustedError,
)

SCENARIO = "power-bank-free"


def main() -> None:
    code = scanned_code(__doc__ or "")
    with venue_client() as city:
        try:
            rental = city.redeem(code, SCENARIO)  # redeem verifies too: one call at the kiosk
        except NotEligibleError:
            print("需支付押金99元 / a ¥99 deposit is needed")
            return
        except QuotaExhaustedError:
            print("今日免费次数已用完 / today's free rentals are used")
            return
        except AlreadyRedeemedError:
            print("该信用码已使用，请刷新 / this code was used, refresh it")
            return
        except CodeRejectedError as exc:
            print(f"信用码无效 / code rejected ({exc.reason})")
            return
        print(f"已弹出充电宝，免押金免费3小时 / power bank released ({rental.id})")


if __name__ == "__main__":
    run(main)

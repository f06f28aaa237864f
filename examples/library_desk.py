"""A library desk (信易阅): deposit-free borrowing for common level 良好 (Good) and above.

python examples/library_desk.py --id 420202197201247944
"""

from __future__ import annotations

from _demo import run, scanned_code, venue_client

from citycredit_partner import CodeRejectedError, NotEligibleError, QuotaExhaustedError

SCENARIO = "library-deposit-free"


def main() -> None:
    code = scanned_code(__doc__ or "")
    with venue_client() as city:
        try:
            check = city.verify(code, SCENARIO)
            print(f"通用等级 common level: {check.tier.name_zh} ({check.tier.name_en})")
            if not check.eligible:
                print(
                    "不符合免押金借阅条件，请按常规办理押金。 / Not eligible: the usual deposit applies."
                )
                return
            done = city.redeem(code, SCENARIO)
            print(f"已核销：{done.benefit.zh} / {done.benefit.en}（编号 {done.id}）")
        except CodeRejectedError as exc:
            print(
                f"信用码无效（{exc.reason}），请读者刷新后重新出示。 / Code rejected: {exc.detail}"
            )
        except (NotEligibleError, QuotaExhaustedError) as exc:
            print(f"未能核销 / not redeemed: {exc.title}")


if __name__ == "__main__":
    run(main)

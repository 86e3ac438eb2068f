"""The soak verdict from samples alone (the soak itself runs for minutes: `make soak`)."""

from __future__ import annotations

import pytest

from tests.soak.run import Sample, judge


def run(lags: list[int | None], rss: list[float], errors: int = 0) -> list[Sample]:
    return [Sample(t=5.0 * n, produced=1000 * n, lag_records=lag, lag_produced=lag,
                   rss_mb=mb, broker_rss_mb=100.0, errors=errors)
            for n, (lag, mb) in enumerate(zip(lags, rss, strict=True))]


@pytest.mark.parametrize(("samples", "drained", "alive", "reasons"), [
    (run([900, 50, 60, 40, 55, 50], [200, 300, 301, 300, 302, 303]), True, True, []),
    (run([10, 50, 600, 40, 55, 50], [300] * 6), True, True, ["lag reached 600 records"]),
    (run([10, 50, 60, 40, 55, 50], [300, 300, 300, 320, 330, 340]), True, True,
     ["worker RSS grew 10.0%"]),
    (run([10, 50, 60, 40, 55, 50], [300] * 6, errors=2), True, True, ["2 error line(s)"]),
    (run([10, 50, 60, 40, 55, 50], [300] * 6), False, False,
     ["did not catch up", "the worker exited"]),
    (run([None] * 6, [300] * 6), True, True, ["no lag sample"]),
    (run([10, 20], [300, 300]), True, True, ["too few samples"]),
])
def test_judge(samples: list[Sample], drained: bool, alive: bool, reasons: list[str]) -> None:
    verdict = judge(samples, warmup_s=5.0, lag_bound=500, max_rss_growth=0.05,
                    drained=drained, worker_alive=alive)
    assert verdict.passed == (not reasons)
    assert len(verdict.reasons) == len(reasons)
    for want, got in zip(reasons, verdict.reasons, strict=True):
        assert want in got

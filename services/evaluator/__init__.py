"""The evaluator service: robustness suites of the paper (Sec. 4.1), JSON results and paper-style tables."""

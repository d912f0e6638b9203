"""test/lib/unittest_tap.py -- run the unittest tests of the current folder
and print one line per test for test/t/060_examples.sh: "PASS <name>" or
"FAIL <name>", then, for a failure, its traceback as "# " lines.  Exits 1 when
a test failed or none ran."""

import sys
import unittest


class Result(unittest.TestResult):
    def addSuccess(self, test):
        super().addSuccess(test)
        print(f"PASS {name(test)}", flush=True)

    def _failed(self, test, err):
        print(f"FAIL {name(test)}")
        for line in self._exc_info_to_string(err, test).rstrip().splitlines():
            print(f"# {line}")
        sys.stdout.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._failed(test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._failed(test, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        print(f"PASS {name(test)} # SKIP {reason}", flush=True)


def name(test):
    # test_examples.Credits.test_a_retry_... -> "Credits: a retry ..."
    parts = test.id().split(".")
    if len(parts) < 2:
        return test.id()
    return f"{parts[-2]}: {parts[-1].removeprefix('test_').replace('_', ' ')}"


suite = unittest.defaultTestLoader.discover(".")
result = Result()
suite.run(result)
sys.exit(0 if result.testsRun and result.wasSuccessful() else 1)

"""schemathesis hooks for test_openapi.py: a check that no error body leaks
a backtrace or a path of the build machine."""

import schemathesis

LEAKS = ("backtrace", ".rs:", "/root/", "/home/", "/.cargo/", "/rustc/", "   0: ")


@schemathesis.check
def no_internals_in_errors(ctx, response, case):
    if response.status_code < 400:
        return None
    text = response.text
    for leak in LEAKS:
        if leak in text:
            raise AssertionError(f"error body leaks {leak!r}: {text[:300]}")
    if len(text) > 8192:
        raise AssertionError(f"error body of {len(text)} bytes")
    return None

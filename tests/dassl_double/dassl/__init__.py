"""Test double of Dassl.pytorch (see tests/dassl_double/README.md); not the real library."""

__version__ = "0.6.3"
IS_TEST_DOUBLE = True

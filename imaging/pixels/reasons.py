"""Reason codes of the `PixelDataError`s the pixel package raises (stable: `radassist
ingest-check` and the fuzz harness count problems by them)."""

NO_PIXEL_DATA = "no_pixel_data"
UNSUPPORTED_SYNTAX = "unsupported_transfer_syntax"
MISSING_DECODER = "missing_decoder"
TRUNCATED = "truncated_pixel_data"
BAD_HEADER = "inconsistent_pixel_header"
UNSUPPORTED_FORMAT = "unsupported_pixel_format"
DECODE_FAILED = "decode_failed"
TOO_LARGE = "too_large"
DECODER_CRASHED = "decoder_crashed"
TIME_BUDGET = "time_budget"

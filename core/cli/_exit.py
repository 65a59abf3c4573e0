"""The command line's exit codes: 0 success, 1 a check failed (audit/gate ``--fail-on``), 2 bad input."""

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

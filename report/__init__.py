"""The HTML report over the marts: `python report/make_report.py --help`."""

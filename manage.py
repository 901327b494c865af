#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makeusrich.settings")
    if not os.environ.get("DEBUG") and not os.environ.get("SECRET_KEY"):
        # Nothing configured: a checkout used for local development, as `make
        # run` sets it up. Commands such as createsuperuser or train then share
        # its var/ (database, generated key) instead of stopping for a missing
        # SECRET_KEY. A deployment sets SECRET_KEY, so DEBUG stays off there.
        os.environ["DEBUG"] = "1"
        if os.environ.get("DATABASE_URL"):  # a deployment's shell missing its SECRET_KEY, maybe
            print(
                "manage.py: neither DEBUG nor SECRET_KEY is set, so DEBUG=1 (local development)",
                file=sys.stderr,
            )
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

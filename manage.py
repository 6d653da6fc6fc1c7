#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  (loads the settings)
    except ImproperlyConfigured as exc:
        # One clear line instead of a traceback from deep inside Django (even for --help).
        sys.exit(f"manage.py: {exc}\nFor local use, `make demo` (or `make env`) writes a .env "
                 "with DEBUG=true; see README, 'Configuration'.")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

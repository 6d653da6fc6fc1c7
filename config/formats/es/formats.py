# Django's Spanish formats with the time zone's abbreviation (see ../en/formats.py).
DATETIME_FORMAT = r"j \d\e F \d\e Y \a \l\a\s H:i T"
SHORT_DATETIME_FORMAT = "d/m/Y H:i T"

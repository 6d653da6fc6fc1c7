# Django's English formats with the time zone's abbreviation: the admin shows times in
# TIME_ZONE (UTC unless set), and a time without its zone is read as local by ops.
DATETIME_FORMAT = "N j, Y, P T"
SHORT_DATETIME_FORMAT = "m/d/Y P T"

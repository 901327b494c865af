# The site's date formats (see makeusrich/formats/__init__.py); Django's English ones fill in the rest.
# Day first and a 24-hour clock, as the charts' axes; "T" names the time zone (UTC).
DATE_FORMAT = "j M Y"  # 6 Mar 2022
TIME_FORMAT = "H:i"  # 17:00
DATETIME_FORMAT = "j M Y H:i T"  # 6 Mar 2022 17:00 UTC
# Table cells whose column header already says "(UTC)".
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = f"{DATE_FORMAT} {TIME_FORMAT}"  # 6 Mar 2022 17:00
MONTH_DAY_FORMAT = "j F"  # 6 March
YEAR_MONTH_FORMAT = "F Y"  # March 2022

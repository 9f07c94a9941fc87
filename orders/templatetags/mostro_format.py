"""Template filters for the one display format (`{% load mostro_format %}`); see orders.display."""

from django import template

from orders import display

register = template.Library()

register.filter("sats", display.sats)
register.filter("fiat", display.fiat)
register.filter("percent", display.percent)
register.filter("when", display.when)
register.filter("duration", display.duration)
register.filter("short", display.short)
register.filter("copyable", display.copyable)

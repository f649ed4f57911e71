"""Integrations with web frameworks, each an optional extra imported only when used:
``pgwerk.contrib.django`` (``pgwerk[django]``) and ``pgwerk.contrib.flask``
(``pgwerk[flask]``)."""

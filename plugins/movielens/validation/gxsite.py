"""GX classes for the Data Docs site of :mod:`movielens.validation.datadocs` (deterministic output).

This module imports Great Expectations at import time: only ``datadocs`` imports it (GX loads these
classes by the ``module_name``/``class_name`` of the site configuration), when it builds.

- The stock ``TupleFilesystemStoreBackend`` lists keys in ``os.walk`` order, which differs between file
  systems, and the index page lists validation results in that order (stable-sorted by run time).
- The stock views put a fresh ``uuid4`` into the ids of collapsible sections, and the build time into
  the logo's URL (``?d=...``), so two builds of the same results would differ in every page.
"""

from __future__ import annotations

import itertools

try:  # as great_expectations.render.view.view does
    from jinja2 import contextfilter  # type: ignore[attr-defined]
except ImportError:
    from jinja2 import pass_context as contextfilter

from great_expectations.data_context.store.tuple_store_backend import TupleFilesystemStoreBackend
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView


class SortedTupleFilesystemStoreBackend(TupleFilesystemStoreBackend):
    """``TupleFilesystemStoreBackend`` listing its keys sorted."""

    def list_keys(self, prefix: tuple = ()) -> list[tuple]:
        return sorted(super().list_keys(prefix))


class _Deterministic:
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(1)

    def generate_html_element_uuid(self, prefix=None):
        # Unique within a build (a counter in uuid form), the same for the same results.
        return f"{prefix or ''}00000000-0000-4000-8000-{next(self._ids):012d}"

    @contextfilter
    def add_data_context_id_to_url(self, jinja_context, url: str, add_datetime: bool = True) -> str:
        return super().add_data_context_id_to_url(jinja_context, url, add_datetime=False)


class DeterministicPageView(_Deterministic, DefaultJinjaPageView):
    pass


class DeterministicIndexPageView(_Deterministic, DefaultJinjaIndexPageView):
    pass

"""Custom objects: the instance's own resources, named in the ``custom_objects`` setting.

Coupa serves a custom object's records at
``/api/custom_objects/<object id>/object_instances`` (Compass, "Custom Object API") but
lists no definitions, so the user names the objects to extract. Each becomes a
``custom_object_<name>`` collection with the documented elements declared
(``schemas/custom_object.json``) and its custom fields typed on ``--discover``.
"""

from __future__ import annotations

import typing as t

from typing_extensions import override

from tap_coupa.ahead import CUSTOM_OBJECT_SCOPE
from tap_coupa.catalog import CUSTOM_OBJECT_SCHEMA
from tap_coupa.collection import CollectionStream
from tap_coupa.errors import CoupaConfigError
from tap_coupa.http import is_no_results

if t.TYPE_CHECKING:
    from tap_coupa.settings import CustomObject

#: The schema every custom object starts from (generated from the Compass page).
SCHEMA = CUSTOM_OBJECT_SCHEMA


class CustomObjectStream(CollectionStream):
    """A custom object's records; a 404 for its path is the setting's mistake."""

    object_id: str = ""

    def missing(self, answer: str) -> CoupaConfigError:
        """The error for a path the instance does not know."""
        return CoupaConfigError(
            f"custom_objects: {self.object_id!r} is not a custom object on this instance "
            f"(Coupa answered 404: {answer}); check its id in Setup > Custom Objects."
        )

    def check_found(self, answer: str) -> None:
        """Raise for a 404 other than 'no results': the instance has no such object."""
        if not is_no_results(answer):
            raise self.missing(answer)

    @override
    def _log_not_found(self, answer: str) -> None:
        """'No results' is an empty object; any other 404 is a wrong ``object_id``."""
        self.check_found(answer)
        super()._log_not_found(answer)


def stream_type(custom: CustomObject) -> type[CustomObjectStream]:
    """The stream class of one configured custom object."""
    attributes = {
        "name": custom.stream,
        "path": custom.path,
        "scope": CUSTOM_OBJECT_SCOPE,
        "object_id": custom.object_id,
        "primary_keys": ("id",),
        "replication_key": "updated-at",
        "__doc__": f"Coupa custom object {custom.object_id} (``/api/{custom.path}``).",
    }
    return type(
        f"CustomObject{custom.name.title().replace('_', '')}Stream",
        (CustomObjectStream,),
        attributes,
    )

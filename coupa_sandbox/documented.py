"""Resources Coupa documents in Compass but R39 does not define: the sandbox's own model.

Written from the elements of each Compass page (facts only), in the notation of
``resources.json`` (see :mod:`coupa_sandbox.schema`), and merged into it by
:mod:`coupa_sandbox.build_resources`. Like the rest of the model, it never reads the
tap: the tap declares the same resources on its own, and the tests compare the two.
"""

from __future__ import annotations

from typing import Any

USER = "@Core_Platform/User"

#: Definitions of the documented resources and their nested rows.
DEFINITIONS: dict[str, dict[str, str]] = {
    # Compass "Easy Form Responses API (/easy_form_responses)".
    "Compass/EasyFormResponse": {
        "id": "integer",
        "easy-form-id": "integer",
        "name": "string",
        "status": "string",
        "submitted-at": "datetime",
        "created-at": "datetime",
        "updated-at": "datetime",
        "created-by": USER,
        "updated-by": USER,
        "requested-by": USER,
        "subject": "object",
        "current-approval": "object",
        "approvals": "[@Core_Platform/Approval]",
        "current-parallel-approvals": "[@Core_Platform/Approval]",
        "easy-form-widget-responses": "[@Compass/EasyFormWidgetResponse]",
        "supplier-id": "integer",
        "custom_object_name": "string",
        "custom_object_code": "string",
    },
    # Compass "Easy Form Widget Responses API".
    "Compass/EasyFormWidgetResponse": {
        "id": "integer",
        "easy-form-id": "integer",
        "easy-form-response-id": "integer",
        "easy-form-widget-id": "integer",
        "answer": "string",
        "encrypted-answer": "string",
        "field-name": "string",
        "type": "string",
        "widget-label": "string",
        "widget-type": "string",
        "created-at": "datetime",
        "updated-at": "datetime",
        "created-by": USER,
        "updated-by": USER,
    },
    # Compass "Purchase Order Revisions API Example Calls": the top-level id is the
    # order's; the revision's own id and time are in revision-record, and changed
    # fields arrive as {from, to}.
    "Compass/OrderHeaderRevision": {
        "id": "integer",
        "revision-record": "@Compass/RevisionRecord",
        "status": "@Compass/Change",
        "version": "@Compass/Change",
        "updated-at": "@Compass/Change",
        "updated-by": "@Compass/Change",
        "ship-to-user": "@Compass/Change",
        "order-lines": "[@Compass/OrderLineRevision]",
    },
    "Compass/RevisionRecord": {
        "id": "integer",
        "revision": "integer",
        "created-at": "datetime",
        "created-by": "integer",
    },
    "Compass/Change": {"from": "string", "to": "string"},
    "Compass/OrderLineRevision": {
        "id": "integer",
        "line-num": "integer",
        "created": "boolean",
        "deleted": "boolean",
    },
    # Compass "Custom Object API (/custom_objects/id)": an object instance; the rest
    # of a custom object is its custom fields.
    "Compass/ObjectInstance": {
        "id": "integer",
        "created-at": "datetime",
        "updated-at": "datetime",
        "created-by": USER,
        "updated-by": USER,
        "custom-object-code": "string",
        "custom-object-name": "string",
        "form-response-id": "integer",
    },
}

#: Served resources: path, definition, read scope and, where the row's own id is in
#: a nested object, that object (the sandbox indexes and filters on it).
RESOURCES: dict[str, dict[str, Any]] = {
    "easy_form_responses": {
        "path": "easy_form_responses",
        "definition": "Compass/EasyFormResponse",
        "scope": "core.easy_form_response.read",  # the scope connectors ask for
    },
    "purchase_order_revisions": {
        "path": "purchase_order_revisions",
        "definition": "Compass/OrderHeaderRevision",
        "scope": "core.purchase_order.read",  # part of the Purchase Orders API
        "key_object": "revision-record",
    },
}

#: The definition of every custom object's records, served at
#: ``/api/custom_objects/<object id>/object_instances``.
CUSTOM_OBJECT = "Compass/ObjectInstance"
CUSTOM_OBJECT_SCOPE = "core.common.read"

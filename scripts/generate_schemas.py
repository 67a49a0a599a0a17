"""Generate tap-coupa's stream schemas and stream registry from Coupa's R39 API definitions.

Coupa's R39 Swagger files are the source of truth for resource paths, field names and
field types, so the schemas are derived from them rather than written by hand. The output
(``tap_coupa/schemas/*.json``) is checked in so the tap installs and runs offline without
those files; ``--check`` lets tests and CI catch drift between the two.

Usage::

    python scripts/generate_schemas.py [--source ../shared/coupa-api-r39] [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "coupa-api-r39"
SCHEMAS_DIR = REPO_ROOT / "tap_coupa" / "schemas"
REGISTRY_FILE = "streams.json"

JsonDict = dict[str, Any]

# Collection-looking GET endpoints that are not a plain list of one resource, with why.
# Every path-parameter-free GET in R39 must be either a stream or listed here, so a new
# R39 release cannot add or drop a stream silently.
EXCLUDED_PATHS: dict[str, str] = {
    "accounts/favorites": "per-user view of accounts; returns a single object",
    "accounts/recent": "per-user view of accounts; returns a single object",
    "accounts/user_accounts": "per-user view of accounts; returns a single object",
    "approvals/approver_search": "autocomplete helper for picking approvers, not a resource",
    "expense_lines/expense_artifacts": "same ExpenseArtifact rows as expense_artifacts",
    "lookup_values/user_lookup_values": "per-user view of lookup values; single object",
    "payables/invoices/available_allocations": "helper for allocating payments; single object",
    "quote_responses/all": "variant of quote_responses incl. drafts; returns a single object",
    "receivable_purchase_order_lines": "filtered view of purchase_order_lines (open to receive)",
    "requisitions/current_cart": "the caller's cart; creates one if missing",
    "requisitions/mine": "per-user view of requisitions; returns a single object",
    "supplier_items/catalog_item_info": "catalog lookup helper; returns a single object",
    "supplier_items/catalog_items": "catalog lookup helper; returns a single object",
    "supplier_items/search": "search helper over supplier_items; returns a single object",
}

# Read scope each stream needs, keyed by R39 path. R39 operations carry no per-operation
# scopes, so this mapping is ours; every value must appear in some file's
# securityDefinitions (checked in build_registry). Entries marked "default" have no
# resource-specific read scope in R39 and fall back to core.common.read.
COMMON = "core.common.read"
SCOPES: dict[str, str] = {
    # Accounting
    "account_groups": "core.accounting.read",
    "account_types": "core.accounting.read",
    "account_validation_rules": "core.accounting.read",
    "accounts": "core.accounting.read",
    # Approvals, budgets, comments
    "approvals": "core.approval.read",
    "budget_line_adjustments": "core.budget.read",
    "budget_lines": "core.budget.read",
    "comments": "core.comment.read",
    # Organisation
    "business_entities": "core.business_entity.read",
    "financial_counterparties": "core.financial_counterparty.read",
    "legal_entities": "core.legal_entity.read",
    "project_memberships": "core.project.read",
    "projects": "core.project.read",
    "tasks": "core.project.read",
    "user_group_memberships": "core.user_group.read",
    "user_groups": "core.user_group.read",
    "users": "core.user.read",
    # Common set-up / reference data
    "addresses": COMMON,
    "announcements": COMMON,
    "attachments": COMMON,  # default
    "business_groups": COMMON,
    "commodities": COMMON,
    "commodity_translations": COMMON,
    "currencies": COMMON,
    "data_file_sources": COMMON,  # default
    "departments": COMMON,
    "exchange_rates": COMMON,
    "lookup_values": COMMON,
    "lookups": COMMON,
    "payment_terms": COMMON,
    "shipping_terms": COMMON,
    "tax_registrations": COMMON,  # default
    "uoms": COMMON,
    # Integrations
    "integration_contacts": "core.integration.read",
    "integration_errors": "core.integration.read",
    "integration_history_records": "core.integration.read",
    "integration_runs": "core.integration.read",
    "integrations": "core.integration.read",
    # Catalog
    "items": "core.catalog.read",
    "supplier_items": "core.catalog.read",
    # Suppliers
    "supplier_information": "core.supplier.read",
    "supplier_information_sites": "core.supplier_information_sites.read",
    "supplier_risk_aware_feed": "core.supplier.risk_aware.read",
    "supplier_sharing_settings": "core.supplier_sharing_settings.read",
    "supplier_sites": "core.supplier.read",
    "suppliers": "core.supplier.read",
    # Procurement
    "contracts": "core.contract.read",
    "contracts/templates": "core.contracts_template.read",
    "order_header_confirmations": "core.order_header_confirmations.read",
    "order_pads": "core.order_pad.read",
    "purchase_order_changes": "core.purchase_order.read",
    "purchase_order_lines": "core.purchase_order.read",
    "purchase_orders": "core.purchase_order.read",
    "quote_requests": "core.sourcing.read",
    "quote_responses": "core.sourcing.response.read",
    "requisitions": "core.requisition.read",
    # Invoicing and payables
    "coupa_pay/invoices": "core.pay.payments.read",  # closest Coupa Pay read scope in R39
    "coupa_pay/payments": "core.pay.payments.read",
    "invoice_emails": "core.invoice.read",
    "invoices": "core.invoice.read",
    "payables/allocations": "core.payables.allocations.read",
    "payables/external/payables": "core.payables.external.read",
    "payables/invoices": "core.payables.invoice.read",
    "payables/order/reconciliation_lines": "core.payables.order.read",
    "payables/orders": "core.payables.order.read",
    # Expenses
    "expense_artifacts": "core.expense.read",
    "expense_lines": "core.expense.read",
    "expense_reports": "core.expense.read",
    # Inventory and receiving
    "asn/headers": "core.inventory.asn.read",
    "asset_tags": "core.inventory.common.read",
    "cycle_counts": "core.inventory.cycle_counts.read",
    "default_receiving_locations": "core.inventory.common.read",
    "inspection_codes": "core.inventory.common.read",
    "inventory": "core.inventory.balance.read",
    "inventory_adjustments": "core.inventory.adjustment.read",
    "inventory_consumptions": "core.inventory.consumption.read",
    "inventory_transactions": "core.inventory.transaction.read",
    "inventory_transfers": "core.inventory.transfer.read",
    "pick_lists": "core.inventory.pick_list.read",
    "receipt_requests": "core.inventory.receiving.read",
    "receiving_transactions": "core.inventory.receiving.read",
    "return_requests": "core.inventory.return_to_supplier.read",
    "return_to_supplier_transactions": "core.inventory.return_to_supplier.read",
    "warehouses": "core.inventory.common.read",
}


@dataclass(frozen=True)
class Child:
    """A stream the tap emits from an array on its parent's records (no extra requests)."""

    name: str
    parent: str
    array_field: str
    parent_key: str


# Nested line arrays exposed as their own streams. parent_key is the property the tap
# adds to each child record carrying its parent's id.
CHILDREN: tuple[Child, ...] = (
    Child("invoice_lines", "invoices", "invoice-lines", "invoice-id"),
    Child("invoice_charges", "invoices", "invoice-charges", "invoice-id"),
    Child("invoice_tax_lines", "invoices", "tax-lines", "invoice-id"),
    Child("invoice_line_tax_lines", "invoice_lines", "tax-lines", "invoice-line-id"),
    Child(
        "invoice_line_account_allocations",
        "invoice_lines",
        "account-allocations",
        "invoice-line-id",
    ),
    Child("invoice_charge_tax_lines", "invoice_charges", "tax-lines", "invoice-charge-id"),
    Child(
        "invoice_charge_account_allocations",
        "invoice_charges",
        "account-allocations",
        "invoice-charge-id",
    ),
    Child("requisition_lines", "requisitions", "requisition-lines", "requisition-id"),
    Child(
        "requisition_line_account_allocations",
        "requisition_lines",
        "account-allocations",
        "requisition-line-id",
    ),
    Child(
        "purchase_order_line_account_allocations",
        "purchase_order_lines",
        "account-allocations",
        "order-line-id",
    ),
    Child(
        "expense_line_account_allocations",
        "expense_lines",
        "account-allocations",
        "expense-line-id",
    ),
    Child("expense_line_taxes", "expense_lines", "expense-line-taxes", "expense-line-id"),
    # Records owned by their parent (each with its own id and updated-at) that data
    # teams query as tables. Arrays of shared references (content-groups, roles,
    # account-types, tags), and arrays whose rows have a stream of their own
    # (approvals, attachments, order-lines, expense-lines), are left out.
    Child("supplier_remit_to_addresses", "suppliers", "remit-to-addresses", "supplier-id"),
    Child("supplier_addresses", "suppliers", "supplier-addresses", "supplier-id"),
    Child("supplier_contacts", "suppliers", "contacts", "supplier-id"),
    Child("supplier_diversities", "suppliers", "diversities", "supplier-id"),
    Child(
        "supplier_information_addresses",
        "supplier_information",
        "supplier-information-addresses",
        "supplier-information-id",
    ),
    Child(
        "supplier_information_contacts",
        "supplier_information",
        "supplier-information-contacts",
        "supplier-information-id",
    ),
    Child("business_entity_addresses", "business_entities", "addresses", "business-entity-id"),
    Child("asn_header_lines", "asn_headers", "lines", "asn-header-id"),
    Child("cycle_count_lines", "cycle_counts", "cycle-count-lines", "cycle-count-id"),
    Child("order_pad_lines", "order_pads", "order-pad-lines", "order-pad-id"),
    Child("quote_request_lines", "quote_requests", "lines", "quote-request-id"),
    Child("quote_response_lines", "quote_responses", "lines", "quote-response-id"),
    Child("receipt_request_lines", "receipt_requests", "lines", "receipt-request-id"),
    Child("return_request_lines", "return_requests", "lines", "return-request-id"),
    Child("warehouse_locations", "warehouses", "warehouse-locations", "warehouse-id"),
)


def ancestor_keys(child: Child) -> list[str]:
    """The id properties of a child's ancestors above its parent, root first.

    A grandchild row carries them all (an allocation: invoice-id and invoice-line-id),
    so it joins to every level even where its parent's id is not unique alone.
    """
    parent = next((c for c in CHILDREN if c.name == child.parent), None)
    return [] if parent is None else [*ancestor_keys(parent), parent.parent_key]


# R39 "date"-format fields that are not calendar dates, so no date-time format for them.
NOT_A_DATE: frozenset[tuple[str, str]] = frozenset(
    {("Expense-Mileage-Config", "accumulation-period-start-day-month")}
)

OPEN_OBJECT: JsonDict = {"type": ["object", "null"]}
OPEN_ARRAY: JsonDict = {"type": ["array", "null"]}
SCALAR_TYPES = frozenset({"integer", "number", "boolean", "string"})
DECIMAL_SIZE = re.compile(r"decimal\((\d+),(\d+)\)")


INTEGER: JsonDict = {"type": ["integer", "null"]}
TEXT: JsonDict = {"type": ["string", "null"]}
FLAG: JsonDict = {"type": ["boolean", "null"]}
INSTANT: JsonDict = {"type": ["string", "null"], "format": "date-time"}
#: A value Compass documents as text, an object or a list, depending on the row.
TEXT_OR_JSON: JsonDict = {"type": ["string", "object", "array", "null"]}


def rows_of(properties: JsonDict) -> JsonDict:
    """An array of objects with the given declared properties (others kept as sent)."""
    return {**OPEN_ARRAY, "items": {**OPEN_OBJECT, "properties": properties}}


@dataclass(frozen=True)
class Documented:
    """A resource R39 lacks, declared from the elements of its Compass page.

    ``key_object`` names an object holding the row's own id and replication key, when
    the record's top-level ``id`` is another resource's: the tap lifts them to the top
    and keeps that other id under ``displaced_id``.
    """

    name: str
    path: str
    page: str
    scope: str
    properties: JsonDict
    replication_key: str | None
    key_object: JsonDict | None = None


# Resources found in Coupa's Compass documentation but not in the R39 definitions,
# each with the Compass page its elements come from. Elements Compass does not list
# arrive under extra-fields. A name without a path is a schema template, not a stream.
_WIDGET_RESPONSE: JsonDict = {
    "id": INTEGER,
    "easy-form-id": INTEGER,
    "easy-form-response-id": INTEGER,
    "easy-form-widget-id": INTEGER,
    # Text, a name or an id, a child form's responses, a region object or a list,
    # depending on the widget (Compass, Easy Form Widget Responses API).
    "answer": TEXT_OR_JSON,
    "encrypted-answer": TEXT,
    "field-name": TEXT,
    "type": TEXT,
    "widget-label": TEXT,
    "widget-type": TEXT,
    "created-at": INSTANT,
    "updated-at": INSTANT,
    "created-by": OPEN_OBJECT,
    "updated-by": OPEN_OBJECT,
}
DOCUMENTED: tuple[Documented, ...] = (
    Documented(
        "easy_form_responses",
        "easy_form_responses",
        "Easy Form Responses API (/easy_form_responses); Easy Form Widget Responses API",
        "core.easy_form_response.read",
        {
            "id": INTEGER,
            "easy-form-id": INTEGER,
            "name": TEXT,
            "status": TEXT,
            "submitted-at": INSTANT,
            "created-at": INSTANT,
            "updated-at": INSTANT,
            "created-by": OPEN_OBJECT,
            "updated-by": OPEN_OBJECT,
            "requested-by": OPEN_OBJECT,
            "subject": OPEN_OBJECT,
            "current-approval": OPEN_OBJECT,
            "approvals": rows_of({"id": INTEGER}),
            "current-parallel-approvals": rows_of({"id": INTEGER}),
            "easy-form-widget-responses": rows_of(_WIDGET_RESPONSE),
            # SIM responses carry the supplier; custom object responses their object.
            "supplier-id": INTEGER,
            "custom_object_name": TEXT,
            "custom_object_code": TEXT,
            "custom-fields": OPEN_OBJECT,
        },
        "updated-at",
    ),
    Documented(
        "purchase_order_revisions",
        "purchase_order_revisions",
        "Purchase Order Revisions API Example Calls",
        # Compass names no scope; the page is part of the Purchase Orders API.
        "core.purchase_order.read",
        {
            # The revision record's id and created-at, lifted (see key_object).
            "id": INTEGER,
            "created-at": INSTANT,
            "purchase-order-id": INTEGER,
            "revision-record": {
                **OPEN_OBJECT,
                "properties": {
                    "id": INTEGER,
                    "revision": INTEGER,
                    "created-at": INSTANT,
                    "created-by": INTEGER,
                },
            },
            # Changed fields arrive as {"from": ..., "to": ...}; only changed ones appear.
            "status": OPEN_OBJECT,
            "version": OPEN_OBJECT,
            "updated-at": OPEN_OBJECT,
            "updated-by": OPEN_OBJECT,
            "ship-to-user": OPEN_OBJECT,
            "order-lines": rows_of(
                {"id": INTEGER, "line-num": INTEGER, "created": FLAG, "deleted": FLAG}
            ),
        },
        "created-at",
        {
            "object": "revision-record",
            "keys": ["id", "created-at"],
            "displaced_id": "purchase-order-id",
        },
    ),
    Documented(
        "custom_object",
        "",
        "Custom Object API (/custom_objects/id)",
        COMMON,  # Compass names no scope for custom objects
        {
            "id": INTEGER,
            "created-at": INSTANT,
            "updated-at": INSTANT,
            "created-by": OPEN_OBJECT,
            "updated-by": OPEN_OBJECT,
            "custom-object-code": TEXT,
            "custom-object-name": TEXT,
            "form-response-id": INTEGER,
            # A custom object is made of the instance's custom fields (typed on
            # --discover from live records, like every stream's custom-fields).
            "custom-fields": OPEN_OBJECT,
        },
        "updated-at",
    ),
)


def documented_outputs(known_scopes: set[str], r39_names: set[str]) -> dict[str, JsonDict]:
    """Schema (and registry entry, for a stream) of each DOCUMENTED resource."""
    out: dict[str, JsonDict] = {}
    for doc in DOCUMENTED:
        if doc.name in r39_names:
            raise GeneratorError(f"{doc.name} is in R39 now; drop it from DOCUMENTED")
        if doc.scope not in known_scopes:
            raise GeneratorError(f"{doc.name}: scope {doc.scope} is not in R39")
        out[doc.name] = {"schema": {"type": "object", "properties": doc.properties}}
        if doc.path:
            out[doc.name]["entry"] = {
                "path": doc.path,
                "definition": f"Compass: {doc.page}",
                "scope": doc.scope,
                "primary_keys": ["id"],
                "replication_key": doc.replication_key,
                "parent": None,
                "array_field": None,
                "parent_key": None,
                "ancestor_keys": [],
                "key_object": doc.key_object,
            }
    return out


class GeneratorError(Exception):
    """R39 and the tables above disagree; the message says what to fix."""


@dataclass
class ApiFile:
    """One R39 Swagger file: refs resolve within the file that uses them."""

    name: str
    definitions: dict[str, JsonDict]
    scopes: set[str]
    collections: dict[str, JsonDict]  # path (no leading slash) -> 200 response schema


@dataclass
class Stream:
    """Everything needed to emit one stream's schema and registry entry."""

    name: str
    path: str
    definition: str
    api: ApiFile
    scope: str
    parent: Child | None = None


def load_api_files(source: Path) -> list[ApiFile]:
    """Read every R39 file, keeping only what generation needs."""
    files = sorted(source.glob("*.json"))
    if not files:
        raise GeneratorError(f"no R39 *.json files found in {source}")
    apis = []
    for file in files:
        doc = json.loads(file.read_text(encoding="utf-8"))
        scopes: set[str] = set()
        for security in doc.get("securityDefinitions", {}).values():
            scopes.update(security.get("scopes", {}))
        collections = {}
        for path, ops in doc.get("paths", {}).items():
            if "get" in ops and "{" not in path:
                response = ops["get"].get("responses", {}).get("200", {})
                collections[path.strip("/")] = response.get("schema", {})
        apis.append(ApiFile(file.name, doc.get("definitions", {}), scopes, collections))
    return apis


def ref_name(prop: JsonDict) -> str | None:
    """Definition name a property or array item points at, if any."""
    ref = prop.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def scalar(definition: str, name: str, prop: JsonDict) -> JsonDict:
    """Nullable JSON Schema for a scalar; R39's declared type wins over its format."""
    kind = prop["type"]
    schema: JsonDict = {"type": [kind, "null"]}
    # Coupa sends full ISO-8601 datetimes with offsets even for date-only columns, so
    # both "datetime" and "date" map to date-time; "time" (HH:MM) stays a plain string.
    is_date = kind == "string" and prop.get("format") in {"datetime", "date"}
    if is_date and (definition, name) not in NOT_A_DATE:
        schema["format"] = "date-time"
    # Keep the column's declared size (the keywords of the SDK's x-singer.decimal), so
    # a target or the tap's decimal_format=string can create an exact DECIMAL(p, s).
    if kind == "number" and (size := DECIMAL_SIZE.fullmatch(prop.get("format", ""))):
        schema["precision"], schema["scale"] = int(size[1]), int(size[2])
    return schema


def nested_property(owner: str, name: str, prop: JsonDict) -> JsonDict:
    """Property of an expanded association or line item: associations stay open."""
    if prop.get("type") in SCALAR_TYPES:
        return scalar(owner, name, prop)
    if prop.get("type") == "array" and prop.get("items", {}).get("type") in SCALAR_TYPES:
        return {**OPEN_ARRAY, "items": scalar(owner, name, prop["items"])}
    if prop.get("type") == "array":
        return dict(OPEN_ARRAY)
    # $ref, an explicit object, or untyped (R39's "one of several objects") properties.
    return dict(OPEN_OBJECT)


def expanded_object(api: ApiFile, definition: str) -> JsonDict:
    """One level of a referenced definition: its scalars typed, its associations open."""
    props = api.definitions[definition].get("properties", {})
    return {
        **OPEN_OBJECT,
        "properties": {
            name: nested_property(definition, name, prop) for name, prop in props.items()
        },
    }


def record_property(api: ApiFile, owner: str, name: str, prop: JsonDict) -> JsonDict:
    """Property of a stream record: associations and line arrays are expanded one level.

    A $ref back to the owning definition is how R39 marks a type it could not resolve
    (e.g. ExpenseReport.currency, OrderHeader.hide-price), so it is kept open instead of
    being expanded with the owner's own fields.
    """
    if name == "custom-fields":
        return dict(OPEN_OBJECT)
    target = ref_name(prop)
    if target is not None:
        return dict(OPEN_OBJECT) if target == owner else expanded_object(api, target)
    if prop.get("type") == "array":
        items = prop.get("items", {})
        item_target = ref_name(items)
        if item_target is None:
            if items.get("type") in SCALAR_TYPES:
                return {**OPEN_ARRAY, "items": scalar(owner, name, items)}
            return dict(OPEN_ARRAY)
        if item_target == owner:
            return {**OPEN_ARRAY, "items": dict(OPEN_OBJECT)}
        return {**OPEN_ARRAY, "items": expanded_object(api, item_target)}
    if prop.get("type") in SCALAR_TYPES:
        return scalar(owner, name, prop)
    return dict(OPEN_OBJECT)


def record_schema(stream: Stream) -> JsonDict:
    """Top-level JSON Schema for a stream record."""
    props = stream.api.definitions[stream.definition].get("properties", {})
    properties = {
        name: record_property(stream.api, stream.definition, name, prop)
        for name, prop in props.items()
    }
    # Instance-specific custom fields arrive whole as one object on every record.
    properties["custom-fields"] = dict(OPEN_OBJECT)
    if stream.parent is not None:
        for key in [*ancestor_keys(stream.parent), stream.parent.parent_key]:
            properties[key] = {"type": ["integer", "null"]}
    if "id" in properties:
        properties["id"] = {"type": ["integer", "null"]}
    return {"type": "object", "properties": properties}


def discover_streams(apis: list[ApiFile]) -> list[Stream]:
    """Top-level streams from collection endpoints, then the child streams table."""
    streams: dict[str, Stream] = {}
    seen_paths: set[str] = set()
    for api in apis:
        for path, response in sorted(api.collections.items()):
            if path in seen_paths:
                raise GeneratorError(f"{path} is defined in more than one R39 file")
            seen_paths.add(path)
            if path in EXCLUDED_PATHS:
                continue
            definition = ref_name(response.get("items", {}))
            if response.get("type") != "array" or definition is None:
                raise GeneratorError(
                    f"GET /{path} in {api.name} does not return an array of a definition;"
                    " add it to EXCLUDED_PATHS with a reason"
                )
            if path not in SCOPES:
                raise GeneratorError(f"no read scope for /{path}; add it to SCOPES")
            name = path.replace("/", "_")
            streams[name] = Stream(name, path, definition, api, SCOPES[path])
    stale = sorted((set(EXCLUDED_PATHS) | set(SCOPES)) - seen_paths)
    if stale:
        raise GeneratorError(f"in EXCLUDED_PATHS/SCOPES but not in R39: {stale}")
    for child in CHILDREN:
        parent = streams.get(child.parent)
        if parent is None:
            raise GeneratorError(f"{child.name}: parent stream {child.parent} not found")
        field = parent.api.definitions[parent.definition]["properties"].get(child.array_field)
        definition = ref_name((field or {}).get("items", {}))
        if definition is None:
            raise GeneratorError(
                f"{child.name}: {parent.definition}.{child.array_field} is not an array of $ref"
            )
        streams[child.name] = Stream(
            child.name, parent.path, definition, parent.api, parent.scope, child
        )
    return [streams[name] for name in sorted(streams)]


def registry_entry(stream: Stream) -> JsonDict:
    """Registry row: how the tap requests the stream and how it replicates."""
    props = stream.api.definitions[stream.definition].get("properties", {})
    if "id" not in props:
        raise GeneratorError(f"{stream.name}: {stream.definition} has no id; pick a key")
    replication_key = next((k for k in ("updated-at", "created-at") if k in props), None)
    if stream.parent is not None:  # children replicate on updated-at only, else full table
        replication_key = "updated-at" if "updated-at" in props else None
    child = stream.parent
    return {
        "path": stream.path,
        "definition": stream.definition,
        "scope": stream.scope,
        "primary_keys": ["id"],
        "replication_key": replication_key,
        "parent": child.parent if child else None,
        "array_field": child.array_field if child else None,
        "parent_key": child.parent_key if child else None,
        "ancestor_keys": ancestor_keys(child) if child else [],
        "key_object": None,
    }


def render(data: JsonDict) -> str:
    """Stable text so regenerating produces minimal diffs."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def generate(source: Path) -> dict[str, str]:
    """All output files (name -> text) for the schemas directory."""
    apis = load_api_files(source)
    known_scopes = set().union(*(api.scopes for api in apis))
    unknown = sorted(set(SCOPES.values()) - known_scopes)
    if unknown:
        raise GeneratorError(f"scopes not in any R39 securityDefinitions: {unknown}")
    streams = discover_streams(apis)
    outputs = {f"{s.name}.json": render(record_schema(s)) for s in streams}
    entries = {s.name: registry_entry(s) for s in streams}
    for name, doc in documented_outputs(known_scopes, set(entries)).items():
        outputs[f"{name}.json"] = render(doc["schema"])
        if "entry" in doc:
            entries[name] = doc["entry"]
    outputs[REGISTRY_FILE] = render(entries)
    return outputs


def differences(outputs: dict[str, str], directory: Path) -> list[str]:
    """Names of files that are missing, changed, or no longer generated."""
    on_disk = {p.name for p in directory.glob("*.json")} if directory.is_dir() else set()
    changed = [
        name
        for name, text in outputs.items()
        if name not in on_disk or (directory / name).read_text(encoding="utf-8") != text
    ]
    return sorted([*changed, *(on_disk - set(outputs))])


def write(outputs: dict[str, str], directory: Path) -> list[str]:
    """Write changed files and delete stale schemas; return what changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = differences(outputs, directory)
    for name in changed:
        path = directory / name
        if name in outputs:
            path.write_text(outputs[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit 1 from --check means the checked-in output is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="R39 JSON dir")
    parser.add_argument("--check", action="store_true", help="fail if output is stale")
    args = parser.parse_args(argv)
    try:
        outputs = generate(args.source)
    except GeneratorError as exc:
        print(f"generate_schemas: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = differences(outputs, SCHEMAS_DIR)
        if stale:
            print(
                f"generate_schemas: {len(stale)} schema file(s) out of date "
                f"({', '.join(stale[:5])}{', ...' if len(stale) > 5 else ''}); "
                "run python scripts/generate_schemas.py",
                file=sys.stderr,
            )
            return 1
        return 0
    changed = write(outputs, SCHEMAS_DIR)
    print(f"generate_schemas: {len(outputs)} files, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

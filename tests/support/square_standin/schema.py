"""Square's OpenAPI subset: response checks and Square-style errors for malformed requests."""

from __future__ import annotations

import copy
import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from .wire import invalid

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SPEC_PATH = REPO_ROOT / "tests" / "square" / "payments-openapi-subset.json"

_TYPE_CODES = {
    "integer": "EXPECTED_INTEGER",
    "string": "EXPECTED_STRING",
    "boolean": "EXPECTED_BOOLEAN",
    "object": "EXPECTED_OBJECT",
    "array": "EXPECTED_ARRAY",
    "number": "EXPECTED_FLOAT",
}


class SpecValidators:
    """Validators for the subset spec's schemas, built once per spec file."""

    def __init__(self, spec: dict):
        from openapi_schema_validator import OAS30Validator, oas30_format_checker

        spec = copy.deepcopy(spec)
        # Correction (see GUESSES): Square's own examples have no risk_evaluation.status.
        spec["components"]["schemas"]["RiskEvaluation"].pop("required", None)
        self._components = spec["components"]
        self._cls = OAS30Validator
        self._format_checker = oas30_format_checker
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.response_schema: dict[str, str] = {}
        self.request_schema: dict[str, str] = {}
        for ops in spec["paths"].values():
            for op in ops.values():
                ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                self.response_schema[op["operationId"]] = ref.rsplit("/", 1)[1]
                body = op.get("requestBody", {}).get("content", {}).get("application/json")
                if body:
                    self.request_schema[op["operationId"]] = body["schema"]["$ref"].rsplit("/")[-1]
        for name in self.response_schema.values():
            self.validator(name)

    def validator(self, schema_name: str):
        with self._lock:
            if schema_name not in self._cache:
                if schema_name not in self._components["schemas"]:
                    raise KeyError(f"no schema {schema_name!r} in the spec")
                root = {
                    "$ref": f"#/components/schemas/{schema_name}",
                    "components": self._components,
                }
                self._cache[schema_name] = self._cls(root, format_checker=self._format_checker)
            return self._cache[schema_name]

    def errors(self, schema_name: str, instance: Any) -> list:
        found = self.validator(schema_name).iter_errors(instance)
        return sorted(found, key=lambda e: [str(p) for p in e.absolute_path])

    def check(self, schema_name: str, instance: Any) -> list[str]:
        """Readable messages, one per violation; empty when ``instance`` is valid."""
        out = []
        for e in self.errors(schema_name, instance):
            where = "/".join(str(p) for p in e.absolute_path) or "<root>"
            message = e.message if len(e.message) <= 200 else e.message[:200] + "..."
            out.append(f"{schema_name}: {where}: {message} [{e.validator}]")
        return out

    def request_error(self, schema_name: str, body: dict) -> tuple[int, dict] | None:
        """The first violation of a request schema as Square-style error (see GUESSES)."""
        errors = self.errors(schema_name, body)
        if not errors:
            return None
        e = errors[0]
        path = [str(p) for p in e.absolute_path]
        if e.validator == "required":
            missing = next(r for r in e.validator_value if r not in e.instance)
            return invalid(
                "MISSING_REQUIRED_PARAMETER", "Field must be set", ".".join([*path, missing])
            )
        where = ".".join(path)
        if e.validator == "maxLength":
            code, detail = (
                "VALUE_TOO_LONG",
                f"Field must not be greater than {e.validator_value} length",
            )
        elif e.validator == "minLength":
            code, detail = (
                "VALUE_TOO_SHORT",
                f"Field must not be less than {e.validator_value} length",
            )
        elif e.validator == "type":
            expected = e.validator_value if isinstance(e.validator_value, str) else "object"
            code, detail = _TYPE_CODES.get(expected, "INVALID_VALUE"), f"Expected {expected}."
        elif e.validator == "enum":
            code, detail = (
                "INVALID_ENUM_VALUE",
                f"`{e.instance}` is not a valid enum value for `{where}`.",
            )
        else:
            code, detail = "INVALID_VALUE", f"Invalid value for `{where}`."
        return invalid(code, detail, where or None)


@lru_cache(maxsize=4)
def load_spec_validators(spec_path: str) -> SpecValidators:
    return SpecValidators(json.loads(Path(spec_path).read_text(encoding="utf-8")))

"""The gate as JUnit XML: each check a test case, for CI systems' test tabs.

The dialect is the one GitHub, GitLab, Jenkins and Azure all read: one
``<testsuite>`` in a ``<testsuites>`` root, ``classname`` grouping the checks
by their prefix (``rollback.exact`` → ``rollback``), a ``<failure>`` whose
``message`` is the reason and whose text lists the offenders. A check that
only warns passes, with its reason in ``<system-out>`` so it is still seen. A
check that could not run is ``<skipped>`` with its reason and how to run it,
or a ``<failure>`` of type ``not_run`` when the gate ran with ``--require-all``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.report.schema import GateDocument

__all__ = ["render_junit"]


def _suite_name(doc: GateDocument) -> str:
    return f"pgcutover gate: {doc.plan}"


def render_junit(doc: GateDocument) -> str:
    failing = ("fail", "not_run") if doc.require_all else ("fail",)
    failures = sum(1 for c in doc.checks if c.verdict in failing)
    skipped = 0 if doc.require_all else len(doc.not_run)
    root = ET.Element("testsuites", name="pgcutover", tests=str(len(doc.checks)))
    root.set("failures", str(failures))
    root.set("time", f"{doc.seconds:.3f}")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=_suite_name(doc),
        tests=str(len(doc.checks)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{doc.seconds:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="verdict", value=doc.verdict)
    for key, value in sorted(doc.extra.items()):
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            ET.SubElement(props, "property", name=key, value=str(value))
    for check in doc.checks:
        group, _, _ = check.name.partition(".")
        case = ET.SubElement(
            suite, "testcase", name=check.name, classname=f"pgcutover.{doc.plan}.{group}"
        )
        case.set("time", "0")
        offenders = "\n".join(f"- {d}" for d in check.details)
        if check.verdict == "fail":
            failure = ET.SubElement(case, "failure", message=check.reason, type="finding")
            failure.text = f"{check.reason}\n{offenders}".rstrip()
        elif check.verdict == "not_run" and doc.require_all:
            failure = ET.SubElement(case, "failure", message=check.reason, type="not_run")
            failure.text = f"{check.reason} (--require-all)\n{offenders}".rstrip()
        elif check.verdict == "not_run":
            skip = ET.SubElement(case, "skipped", message=check.reason)
            skip.text = f"{check.reason}\n{offenders}".rstrip()
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"{check.verdict.upper()}: {check.reason}\n{offenders}".rstrip()
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

"""The seed's `tools` command: one entry point for the tool commands.

    python manage.py tools list [--json] [--schema]         (= list_tools)
    python manage.py tools validate [--no-sync]             (= validate_tools)
    python manage.py tools test NAME [--args '{…}'] [--json] (= test_tool)
"""
from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Tools: list, validate (and register) or test one. `tools ACTION --help` for each."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,validate,test}")
        listing = actions.add_parser("list", help="registered tools with kind, execution, timeout and stats")
        listing.add_argument("--json", action="store_true", help="one JSON object per tool")
        listing.add_argument("--schema", action="store_true", help="include the OpenAI schema")
        validate = actions.add_parser("validate", help="check every code and HTTP tool, register the code tools")
        validate.add_argument("--no-sync", action="store_true", help="only validate, write nothing")
        test = actions.add_parser("test", help="run one call of a tool and print its result")
        test.add_argument("name")
        test.add_argument("--args", dest="tool_args", default="{}", help="the arguments as a JSON object")
        test.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        io = {"stdout": self.stdout, "stderr": self.stderr}
        if action == "list":
            call_command("list_tools", json=options["json"], schema=options["schema"], **io)
        elif action == "validate":
            call_command("validate_tools", no_sync=options["no_sync"], **io)
        else:
            call_command("test_tool", options["name"], tool_args=options["tool_args"], json=options["json"], **io)

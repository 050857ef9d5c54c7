"""The commands every resource kind has in the same shape: show, list, delete, and for kinds
that hold disk content, download.

A `Kind` knows the options that name one resource of its type (in path
order), how their values become the resource's ARM path, and how `list`
finds the collection. `add_show`, `add_list`, `add_delete` and `add_download` register those
commands on the kind's Typer app, with the options given as if each command
had been written out by hand."""

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

import typer

from galley.cli import paths
from galley.cli.common import NameOpt, NoWaitOpt, OptionalResourceGroupOpt, ResourceGroupOpt, Session, arm_command
from galley.cli.output import Columns
from galley.cli.transfer import DOWNLOAD_COLUMNS, DownloadFormatOpt, LunOpt, OutFileOpt, download_resource

Path = Callable[..., str]  # path(subscription, *option values) -> ARM path


def option(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    """A command option, as `name: annotation = default` in a command's signature."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


RESOURCE_GROUP = option("resource_group", ResourceGroupOpt)
OPTIONAL_RESOURCE_GROUP = option("resource_group", OptionalResourceGroupOpt, None)
NO_WAIT = option("no_wait", NoWaitOpt, False)


@dataclass(frozen=True)
class Kind:
    app: typer.Typer
    api: str
    columns: Columns
    keys: tuple[inspect.Parameter, ...]  # the options naming one resource, in path order
    path: Path  # path(sub, *keys); nested kinds give their collection for the keys but the last
    list_keys: Optional[tuple[inspect.Parameter, ...]] = None  # default: keys but the last
    list_path: Optional[Path] = None  # default: path

    def resource_path(self, session: Session, options: dict) -> str:
        return self.path(session.subscription, *(options[key.name] for key in self.keys))

    def add_show(self, doc: str) -> None:
        self._add("show", doc, self.keys, lambda session, options: session.client.get(
            self.resource_path(session, options), self.api))

    def add_list(self, doc: str) -> None:
        keys = self.keys[:-1] if self.list_keys is None else self.list_keys
        list_path = self.list_path or self.path

        def run(session: Session, options: dict) -> Any:
            path = list_path(session.subscription, *(options[key.name] for key in keys))
            return session.client.list(path, self.api)

        self._add("list", doc, keys, run)

    def add_delete(self, doc: str) -> None:
        self._add("delete", doc, (*self.keys, NO_WAIT), lambda session, options: session.client.delete(
            self.resource_path(session, options), self.api, no_wait=options["no_wait"]), table=False)

    def add_download(self, doc: str, *, with_lun: bool = False) -> None:
        """`download --file F [--format]` (and `--lun` for kinds with data disks)."""
        params = (*self.keys, option("file", OutFileOpt), option("fmt", DownloadFormatOpt, None))
        if with_lun:
            params += (option("lun", LunOpt, None),)

        def run(session: Session, options: dict) -> Any:
            name, lun = options["name"], options.get("lun")
            return download_resource(session, self.resource_path(session, options), self.api, options["file"],
                                     options["fmt"], name if lun is None else f"{name} LUN {lun}", lun=lun)

        self._add("download", doc, params, run, columns=DOWNLOAD_COLUMNS)

    def _add(self, name: str, doc: str, params: tuple[inspect.Parameter, ...],
             run: Callable[[Session, dict], Any], table: bool = True, columns: Optional[Columns] = None) -> None:
        def command(session: Session, **options: Any) -> Any:
            return run(session, options)

        command.__name__ = command.__qualname__ = name
        command.__doc__ = doc
        session = inspect.Parameter("session", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Session)
        command.__signature__ = inspect.Signature([session, *params])  # type: ignore[attr-defined]
        arm_command(self.app, name, (columns or self.columns) if table else None)(command)


def compute_kind(app: typer.Typer, collection: str, api: str, columns: Columns) -> Kind:
    """A top-level Microsoft.Compute kind (disks, snapshots, images): -g and -n name one;
    `list` takes -g, or lists the whole subscription without it."""
    return Kind(
        app, api, columns,
        keys=(RESOURCE_GROUP, option("name", NameOpt)),
        path=lambda sub, rg, name=None: paths.compute(sub, rg, collection, name),
        list_keys=(OPTIONAL_RESOURCE_GROUP,),
        list_path=lambda sub, rg: paths.compute_collection(sub, rg, collection),
    )

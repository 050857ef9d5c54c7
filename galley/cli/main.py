"""The `galley` command: the Typer app and its command groups.

Use `main()` as the entry point: it rewrites az-style multi-value options
(see argv.py) before click parses the command line. Calling `app()` directly
does the same rewriting, so `galley.cli.main:app` works as an entry point too.
"""

import sys
from typing import Any, Optional

import typer

from galley.cli import account, activity, ad, disk, graph, identity, role, group, image, image_builder, image_definition, image_version, maintenance, platform, serve, sig, snapshot, storage, vm, vm_commands  # noqa: F401 (vm_commands adds to vm.app)
from galley.cli import status
from galley.cli.argv import expand_argv, option_names
from galley.cli.common import OnlyShowErrorsOpt, OutputOpt, QueryOpt, ServerOpt, SubscriptionOpt, arm_command


class GalleyApp(typer.Typer):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and "args" not in kwargs:
            kwargs["args"] = preprocess(sys.argv[1:])
        kwargs.setdefault("prog_name", "galley")
        return super().__call__(*args, **kwargs)


app = GalleyApp(
    help="Galley: a self-hosted Compute Gallery, managed image, disk and snapshot service "
    "driven like `az` (ARM REST).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    server: ServerOpt = None,
    subscription: SubscriptionOpt = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    only_show_errors: OnlyShowErrorsOpt = False,
):
    """Global options given before the command apply to it unless it repeats them."""
    ctx.obj = {"server": server, "subscription": subscription, "output": output, "query": query,
               "only_show_errors": only_show_errors}


sig.app.add_typer(image_definition.app, name="image-definition")
sig.app.add_typer(image_version.app, name="image-version")
image.app.add_typer(image_builder.app, name="builder")
app.add_typer(group.app, name="group")
app.add_typer(sig.app, name="sig")
app.add_typer(image.app, name="image")
app.add_typer(disk.app, name="disk")
app.add_typer(snapshot.app, name="snapshot")
app.add_typer(storage.app, name="storage")
app.add_typer(maintenance.store_app, name="store")
app.add_typer(vm.app, name="vm")
app.add_typer(platform.app, name="platform")
arm_command(app, "usage")(maintenance.usage)
arm_command(app, "status")(status.status)
app.command("serve")(serve.serve)
app.add_typer(account.app, name="account")
app.add_typer(ad.app, name="ad")
app.add_typer(role.app, name="role")
app.add_typer(identity.app, name="identity")
app.add_typer(graph.app, name="graph")
app.add_typer(activity.app, name="activity-log")
app.command("login")(account.login)
app.command("logout")(account.logout)


def preprocess(argv: list[str]) -> list[str]:
    """az-style argv -> click-style argv, for this app's options."""
    multi, three_state = option_names(typer.main.get_command(app))
    return expand_argv(argv, multi, three_state)


def main(argv: Optional[list[str]] = None) -> Any:
    """Entry point: `galley …` (argv defaults to sys.argv[1:])."""
    return app(args=preprocess(sys.argv[1:] if argv is None else list(argv)), prog_name="galley")


if __name__ == "__main__":
    main()

"""One module per `extctl` command group; each exposes a `typer.Typer` named `app`."""

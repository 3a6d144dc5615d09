"""The `meterline` commands that need the Pulumi program or the cost model: `cost`, `stacks` and
`smoke`. infra registers them with the meterline CLI through the ``meterline.commands`` entry point
group (pyproject.toml), so infra imports meterline and meterline never imports infra. Each module's
``add_parser`` adds its command to the CLI's subparsers."""

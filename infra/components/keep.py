"""What a `pulumi destroy` never deletes: the billing ledgers and what keeps them readable (their
keys, and on Azure the identity, grant, vault and resource group around them).

`protect` makes any update that would delete or replace one of them fail, and a plain
`pulumi destroy` stop before it starts; `pulumi destroy --exclude-protected` tears down the rest of
the cell and leaves these (and what they depend on) in the stack, so a later `pulumi up` of the same
stack takes them up again. `retain_on_delete` means that even after `pulumi state unprotect`, a
destroy only forgets them: deleting billing data is a separate, deliberate act (README, Deploy).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi


def kept(parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(
        parent=parent, depends_on=list(depends_on), protect=True, retain_on_delete=True
    )

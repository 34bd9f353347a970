"""The server's presentation contexts (the rest of the server runs in the other tests)."""

import copy

from pharos.dicom.transfer_syntaxes import UNCOMPRESSED
from pharos.dimse.options import DicomServerOptions
from pharos.dimse.server import supported_contexts


def test_a_deep_copy_of_the_contexts_shares_nothing_mutable() -> None:
    contexts = supported_contexts(DicomServerOptions(transfer_syntaxes=UNCOMPRESSED))
    copied = copy.deepcopy(contexts)
    assert len(copied) == len(contexts) > 100
    for original, new in zip(contexts, copied, strict=True):
        assert new is not original
        assert new.transfer_syntax is not original.transfer_syntax
        assert (new.abstract_syntax, new.transfer_syntax) == (
            original.abstract_syntax,
            original.transfer_syntax,
        )
        assert (new.scu_role, new.scp_role) == (original.scu_role, original.scp_role)
    copied[-1].add_transfer_syntax("1.2.840.10008.1.2.4.50")
    assert "1.2.840.10008.1.2.4.50" not in contexts[-1].transfer_syntax

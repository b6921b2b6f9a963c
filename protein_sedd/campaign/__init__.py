"""A design campaign as one offline HTML page: training, designs against the family, where they differ,
structure, the plate and variant effects.

    protein-sedd report --run RUN --designs designs.fasta --seq-eval SEQ --fold-eval FOLD --select PICKS \
        --out campaign.html
    protein_sedd.report(out="campaign.html", run="RUN", seq_eval="SEQ", ...)

`parts` reads and checks what each command wrote; `sections` turns it into blocks (one class a section);
`page` renders them into a single file with every picture, style and script inline (no network, no server:
it opens from a USB stick). Any subset of the parts may be given; a section with no part says what would
fill it.
"""

from protein_sedd.campaign.page import write_report

__all__ = ["write_report"]

"""The explorer in the browser (``axiomcam serve``): :mod:`.explorer` computes, :mod:`.server`
serves the page and its JSON API on a local address, offline."""

"""The `galley` command-line client.

It is shaped like `az` so that `az sig …`, `az image …`, `az disk …` and
`az snapshot …` commands translate word for word, and it talks to the server
only over the ARM REST API (see client.py)."""

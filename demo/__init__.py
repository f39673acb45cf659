"""`make demo` (`python -m demo`): the main job end to end, beside `pipelines` and `serving`.

An application of the library, not part of it: it drives `pipelines`, `featnet_tf` and
`serving` in turn, so it lives beside them and `featnet_tf` never imports it.
"""

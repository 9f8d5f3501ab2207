"""Making calls: the per-test :class:`Rolecheck`, the network client, the local server.

``client.py`` is the only module that talks to the network.

Modules::

    asserts       The module-level asserts: they act on the running test's :class:`Rolecheck`.
    backend       The bundled local model as a backend of a run: started on first live need,
                  shared.
    calls         How a test's calls are made: its requests, the runner, the cassette, live or
                  replayed.
    client        The one module that talks to the network, through the official ``openai`` SDK.
    coordinator   One run, many xdist workers: a shared call budget and one shared local server.
    default_client
                  The default client (no ``rolecheck_client`` fixture): one per process and
                  settings.
    drift         A drift check of a test's comparison: each arm's live calls against its recorded
                  ones.
    heap          Keep the garbage collector off the heap every test shares.
    llama_server  Run llama.cpp's own C++ ``llama-server`` (embedded by xllamacpp) in this process.
    logprobs      Whether a server gives logprobs: found out once per endpoint and model, then
                  remembered.
    local         The bundled local backend: SmolLM2-135M-Instruct behind llama.cpp's own ``llama-
                  server``.
    progress      Call counters shared by the runner and whoever displays progress (no heavy
                  imports).
    session       What a test talks to: the :class:`Rolecheck` object (compare, assert, report
                  rows).
"""

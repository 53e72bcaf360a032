"""The hooks of aim: the whole contract between the core and a plugin.

A plugin is a module (or object) with functions marked ``@aim_core.hookimpl``
whose names are the hooks below. It is found through the entry-point group
``aim``::

    [project.entry-points.aim]
    mytool = "aim_plugin_mytool"

How the core calls hooks: each plugin's implementation on its own, through
pluggy (``aim_core.plugins``), so one plugin that raises or hangs is reported
and isolated while every other one keeps working. ``wrapper=True``
implementations run around each call; ``tryfirst``/``trylast`` order the
plugins of a hook that reaches every plugin; old-style ``hookwrapper=True`` is
refused when the plugin loads. ``AIM_TRACE_PLUGINS=1`` prints every call.
``detect_tool``, ``validate_payload`` and ``audit_sink`` reach every plugin;
``get_version`` and ``invoke_capability`` reach only the plugin that *owns*
the tool id -- the one whose ``detect_tool`` answered for it.

An implementation may take fewer arguments than its spec (pluggy passes only
the ones it names), so arguments can be added here over time without
breaking plugins; none is ever renamed or removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from aim_core.context import AimContext
    from aim_core.models import (
        AuditRecord,
        Invocation,
        InvocationResult,
        Problem,
        ToolDetection,
    )

hookspec = pluggy.HookspecMarker("aim")


@hookspec
def detect_tool(context: AimContext) -> ToolDetection | list[ToolDetection] | None:
    """Say which tools this plugin provides and whether each one is installed and ready.

    :param context: the repository root, the settings and the process runner
        (``context.which(name)`` finds a program on PATH, ``context.run(argv)``
        runs one, e.g. ``[path, "--version"]``). ``context.deadline`` is the
        plugin's time limit for this call (10 s by default). A plugin may
        provide several tools, so ``context.options`` is empty here: read a
        tool's options with ``context.settings.tool_options(tool_id)``, and
        pass a tool's own variables to what you run (``env=``) -- or use
        :func:`aim_core.toolkit.detect_program`, which does both.

    :returns: a :class:`~aim_core.ToolDetection` for each tool the plugin
        provides (one object or a list), or None when it provides none. Answer
        for a tool even when its program is missing, with ``installed=False``:
        that is how ``aim status`` shows what could be installed. Set
        ``ready=False`` and a one-sentence ``reason`` saying how to fix it (for
        example ``"Jules requires login (run 'jules login')"``) when the program
        is there but cannot work; leave ``ready=None`` when that can't be known
        cheaply. Name the environment variables the tool needs in
        ``env_passthrough`` and the caches it writes in ``scratch_paths``.

    Every plugin is called (answers are collected), all plugins in parallel.

    The plugin that answers for a tool id *owns* it: ``get_version`` and
    ``invoke_capability`` for that id go to it alone. Two plugins answering
    for one id is a conflict reported by ``aim status`` and ``aim plugins``;
    the first one loaded keeps the id.

    A plugin must never raise for "not installed", never prompt, never start a
    process except through ``context.run``, and never take long: answers are
    cached (per binary path, size and mtime, and for ``watch_paths``) and an
    implementation that raises or passes its time limit is reported as broken.

    Use in plugins: called by ``aim status``, ``aim route``, ``aim doctor`` and
    ``aim run`` when the detection cache is cold, stale or refreshed
    (``aim status --refresh``); usually once per hour per machine.
    """


@hookspec(firstresult=True)
def get_version(tool_id: str, context: AimContext) -> str | None:
    """Report the installed version of one of this plugin's tools.

    :param tool_id: a tool id this plugin's ``detect_tool`` answered for.
    :param context: as for ``detect_tool``; ``context.tool_id`` is ``tool_id``.

    :returns: the version as the tool prints it (``"aider 0.86.2"``), or None
        when it cannot be told.

    Only the plugin that owns ``tool_id`` is called (firstresult: the first
    non-None answer wins if the hook is ever called broadly). A plugin that
    already put ``version`` in its ``ToolDetection`` need not implement it.

    A plugin must never raise for a missing program and never start a
    process except through ``context.run``.

    Use in plugins: called as part of every detection (``aim status``,
    ``aim route``, ``aim doctor``, ``aim run`` when the detection cache is cold,
    stale or refreshed), once for each installed tool whose ``ToolDetection``
    left ``version`` empty, within the detection's time limit.
    """


@hookspec(firstresult=True)
def invoke_capability(
    tool_id: str, capability: str, payload: Invocation, context: AimContext
) -> InvocationResult | None:
    """Do one attempt of the work with one tool.

    :param tool_id: the tool to use; one this plugin owns.
    :param capability: the capability asked for (``code_generation``,
        ``linting``, ``refactoring``, ``testing``, ``version_checking`` or a name
        the plugin declared in its ``ToolDetection.capabilities``).
    :param payload: the :class:`~aim_core.Invocation`: prompt, files (relative
        to ``context.root``), files to create, time limit, the workstream's
        tasks and acceptance tests, and ``options`` (the tool's config section).
    :param context: ``context.run`` runs the tool; ``context.deadline`` is when
        this attempt must end (``payload.timeout_ms`` from its start).

    :returns: an :class:`~aim_core.InvocationResult`. On success
        ``success=True`` and ``failure=None``; otherwise the
        :class:`~aim_core.Failure` that says why, which decides what the core
        does next: ``timeout``, ``rate_limited`` and ``tool_error`` are
        retried with the same tool; ``auth_required``, ``unavailable``,
        ``invalid_payload``, ``not_installed`` and ``out_of_scope`` move to the
        next tool; ``work_failed`` (the tool worked and reports the work itself
        failed: tests fail, lint remains) and ``interrupted`` end the
        workstream. ``message`` is one line the user reads (pytest's
        ``"1 failed"``); ``output`` is the tool's full output for the run log.
        Return None for a tool id the plugin does not own.

    Only the owner of ``tool_id`` is called, once per attempt.

    Decide success from what the tool really did, not from its exit code alone
    (some tools exit 0 on errors). The core snapshots the files before the
    attempt, checks afterwards that only the files in scope changed, restores
    them when the attempt fails and measures ``files_created``,
    ``files_modified`` and ``duration_sec`` itself.

    A plugin must never start a process except through ``context.run``, never
    write outside the files in the payload, never retry on its own (the core
    retries), and never put secrets in ``message``.

    Use in plugins: called by ``aim run`` and ``aim_core.run_workstream`` for
    every attempt routed to this plugin's tools.
    """


@hookspec
def validate_payload(
    tool_id: str | None, capability: str | None, payload: Invocation, context: AimContext
) -> list[Problem] | None:
    """Object to a request before anything runs.

    :param tool_id: the candidate tool about to be invoked, or None when the
        core's rules check the workstream as a whole (once per workstream).
    :param capability: the capability asked for, or None for a direct
        invocation of a tool.
    :param payload: the :class:`~aim_core.Invocation` that would be sent.
    :param context: the repository root and settings.

    :returns: a list of :class:`~aim_core.Problem` (``field``, ``message``),
        empty or None when the plugin has no objection.

    Every plugin is called (answers are collected). A plugin usually answers
    only for its own tools and returns None for other tool ids; the core's
    security rules answer for ``tool_id=None``. An implementation marked
    :func:`aim_core.own_tools_only` is called only for the tool ids its
    plugin's ``detect_tool`` answers for (so ``aim run`` need not import the
    plugin when the work goes to another tool).

    An objection to the workstream as a whole (``tool_id=None``) stops it with
    exit code 2; an objection for one tool moves the run on to the next
    candidate (``invalid_payload``). Field paths use the workstream's names
    (``capability_payload.files[0]``).

    A plugin must never modify the payload or any file, and never start a
    process: this hook is a pure check.

    Use in plugins: called by ``aim run`` and ``aim validate``, once per
    workstream and once per candidate tool.
    """


@hookspec
def audit_sink(record: AuditRecord) -> None:
    """Receive one audit record.

    :param record: the :class:`~aim_core.AuditRecord`, already redacted and
        already appended by the core to its JSONL log with its ``seq`` and
        ``hash`` (the record of truth); ``record.to_dict()`` is the JSON object
        of that line.

    :returns: None (an answer is ignored).

    Every plugin is called, one after the other, after the core wrote the
    record to its JSONL log. A sink that raises or passes its time limit (5 s
    by default) is reported once per run and never stops the run, the other
    sinks or the JSONL record.

    A sink must never change the record, never block for long (hand slow
    work to a queue of its own and empty it in :func:`audit_flush`) and never
    write the record anywhere a secret scanner of the user's would not expect.

    Use in plugins: called by ``aim run`` once per audit record: one per
    attempt, per security refusal, per recovered run and one when no tool
    could be invoked.
    """


@hookspec
def audit_flush(timeout_s: float) -> None:
    """Finish handing over every record received so far, before aim exits.

    :param timeout_s: how long aim waits for this call (seconds); finish
        within it. Records still queued afterwards may be lost.

    :returns: None.

    Every plugin is called, one after the other, bounded by ``timeout_s``
    (10 s by default); one that raises or hangs is reported and the others
    are still called.

    Use in plugins: a sink that queues records in :func:`audit_sink` (to a
    thread, a batch for a remote service) sends what it holds and waits for
    it here. Called once at the end of every ``aim`` command that wrote audit
    records, and by ``aim_core.run_workstream`` before it returns; the aim
    process may end right after (without running ``atexit`` handlers or
    waiting for other threads).
    """

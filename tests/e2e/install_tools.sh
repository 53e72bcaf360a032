#!/usr/bin/env bash
# Installs the real AI coding tools that `make e2e` drives, at pinned versions, under a
# cache directory outside the clone (reused when present, so a second run is quick):
#
#   $AIM_E2E_CACHE/aider-$AIDER_VERSION/     a venv with aider-chat  (bin/aider)
#   $AIM_E2E_CACHE/claude-$CLAUDE_VERSION/   @anthropic-ai/claude-code (node_modules/.bin/claude)
#   $AIM_E2E_CACHE/jules-$JULES_VERSION/     @google/jules            (node_modules/.bin/jules)
#   $AIM_E2E_CACHE/codex-$CODEX_VERSION/     @openai/codex            (node_modules/.bin/codex)
#   $AIM_E2E_CACHE/gemini-$GEMINI_VERSION/   @google/gemini-cli       (node_modules/.bin/gemini)
#   $AIM_E2E_CACHE/opencode-$OPENCODE_VERSION/ opencode-ai            (node_modules/.bin/opencode)
#
# A directory counts as installed only once its `.installed` stamp is written, so an
# install cut short is redone. Prints the bin directories as one PATH value (a:b:c).
set -euo pipefail

: "${AIM_E2E_CACHE:=$HOME/.cache/aim-e2e}"
: "${AIDER_VERSION:?}" "${CLAUDE_VERSION:?}" "${JULES_VERSION:?}"
: "${CODEX_VERSION:?}" "${GEMINI_VERSION:?}" "${OPENCODE_VERSION:?}"
: "${PYTHON:=python3}"
mkdir -p "$AIM_E2E_CACHE"

log() { printf '[e2e] %s\n' "$*" >&2; }

command -v npm >/dev/null || { log "npm (Node.js 20 or newer) is needed for claude, jules, codex, gemini and opencode"; exit 1; }

fresh() {  # fresh DIR: true (and DIR emptied) when DIR must be installed
    if [[ -f "$1/.installed" ]]; then
        return 1
    fi
    rm -rf "$1"
    mkdir -p "$1"
}

done_stamp() { date -u +%Y-%m-%dT%H:%M:%SZ >"$1/.installed"; }

aider_dir="$AIM_E2E_CACHE/aider-$AIDER_VERSION"
if fresh "$aider_dir"; then
    log "installing aider-chat==$AIDER_VERSION into $aider_dir"
    start=$SECONDS
    "$PYTHON" -m venv "$aider_dir"
    # (pip's notes about this machine's local package folders are left out)
    "$aider_dir/bin/python" -m pip install -q --disable-pip-version-check \
        "aider-chat==$AIDER_VERSION" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; } >&2
    "$aider_dir/bin/aider" --version >&2
    done_stamp "$aider_dir"
    log "aider installed in $((SECONDS - start)) s"
fi

npm_tool() {  # npm_tool DIR PACKAGE@VERSION
    local dir=$1 spec=$2 start=$SECONDS
    if fresh "$dir"; then
        log "installing $spec into $dir"
        # Each package in its own prefix; npm's own cache (~/.npm) makes a reinstall quick.
        npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error "$spec" >&2
        done_stamp "$dir"
        log "$spec installed in $((SECONDS - start)) s"
    fi
}
claude_dir="$AIM_E2E_CACHE/claude-$CLAUDE_VERSION"
jules_dir="$AIM_E2E_CACHE/jules-$JULES_VERSION"
npm_tool "$claude_dir" "@anthropic-ai/claude-code@$CLAUDE_VERSION"
npm_tool "$jules_dir" "@google/jules@$JULES_VERSION"
codex_dir="$AIM_E2E_CACHE/codex-$CODEX_VERSION"
gemini_dir="$AIM_E2E_CACHE/gemini-$GEMINI_VERSION"
opencode_dir="$AIM_E2E_CACHE/opencode-$OPENCODE_VERSION"
npm_tool "$codex_dir" "@openai/codex@$CODEX_VERSION"
npm_tool "$gemini_dir" "@google/gemini-cli@$GEMINI_VERSION"
npm_tool "$opencode_dir" "opencode-ai@$OPENCODE_VERSION"

bins=("$aider_dir/bin" "$claude_dir/node_modules/.bin" "$jules_dir/node_modules/.bin"
    "$codex_dir/node_modules/.bin" "$gemini_dir/node_modules/.bin" "$opencode_dir/node_modules/.bin")
(IFS=:; echo "${bins[*]}")

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
#
# Usage: install_tools.sh [TOOL...]   TOOL: aider claude jules codex gemini opencode
# (default: all of them; `make demo` asks for aider and claude only). Only the chosen
# tools' *_VERSION variables are needed, and npm only when an npm tool is chosen.
set -euo pipefail

ALL_TOOLS=(aider claude jules codex gemini opencode)
if (($# == 0)); then set -- "${ALL_TOOLS[@]}"; fi
: "${AIM_E2E_CACHE:=$HOME/.cache/aim-e2e}"
: "${PYTHON:=python3}"

log() { printf '[e2e] %s\n' "$*" >&2; }

needs_npm=false
for tool in "$@"; do
    case $tool in
    aider) : "${AIDER_VERSION:?}" ;;
    claude) : "${CLAUDE_VERSION:?}" ;;
    jules) : "${JULES_VERSION:?}" ;;
    codex) : "${CODEX_VERSION:?}" ;;
    gemini) : "${GEMINI_VERSION:?}" ;;
    opencode) : "${OPENCODE_VERSION:?}" ;;
    *) log "unknown tool '$tool' (one of: ${ALL_TOOLS[*]})"; exit 2 ;;
    esac
    [[ $tool == aider ]] || needs_npm=true
done
TOOLS=" $* "
chosen() { [[ $TOOLS == *" $1 "* ]]; }
mkdir -p "$AIM_E2E_CACHE"

if $needs_npm && ! command -v npm >/dev/null; then
    log "npm (Node.js 20 or newer) is needed for claude, jules, codex, gemini and opencode"
    exit 1
fi

fresh() {  # fresh DIR: true (and DIR emptied) when DIR must be installed
    if [[ -f "$1/.installed" ]]; then
        return 1
    fi
    rm -rf "$1"
    mkdir -p "$1"
}

done_stamp() { date -u +%Y-%m-%dT%H:%M:%SZ >"$1/.installed"; }

bins=()
if chosen aider; then
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
    bins+=("$aider_dir/bin")
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
npm_bin() {  # npm_bin NAME PACKAGE VERSION: installed when chosen, its bin directory noted
    local dir="$AIM_E2E_CACHE/$1-$3"
    if chosen "$1"; then
        npm_tool "$dir" "$2@$3"
        bins+=("$dir/node_modules/.bin")
    fi
}
npm_bin claude @anthropic-ai/claude-code "${CLAUDE_VERSION:-}"
npm_bin jules @google/jules "${JULES_VERSION:-}"
npm_bin codex @openai/codex "${CODEX_VERSION:-}"
npm_bin gemini @google/gemini-cli "${GEMINI_VERSION:-}"
npm_bin opencode opencode-ai "${OPENCODE_VERSION:-}"

(IFS=:; echo "${bins[*]}")

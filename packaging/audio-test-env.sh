#!/usr/bin/env bash
# Starts a real audio server for the microphone tests (idempotent; as root; Debian/Ubuntu):
# a system-wide PulseAudio with one virtual speaker, the null sink `emo_speaker`, whose monitor
# `emo_speaker.monitor` is the default source. Whatever is played into it (`paplay FILE`) is what
# a microphone opened on ALSA's `default` device hears: Debian's pulseaudio package routes ALSA's
# `default` to a running PulseAudio (/etc/alsa/conf.d/99-pulse.conf, libasound2-plugins), and
# PulseAudio clients find a system-wide server at /var/run/pulse/native without any set-up. No
# sound card, D-Bus or session is needed, and no ALSA configuration file is written.
#
#   ./packaging/audio-test-env.sh          start it (or check that it runs)
#   ./packaging/audio-test-env.sh stop     stop it
#
# The emo-capture microphone tests use it (EMO_REQUIRE_AUDIO=1 makes its absence a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
state=/var/lib/emo-audio-test
pidfile=/var/run/pulse/pid

running() { pactl info >/dev/null 2>&1; }
ours() { pactl list short sinks 2>/dev/null | grep -q $'\temo_speaker\t'; }

if [ "${1:-}" = stop ]; then
  if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  for _ in $(seq 50); do running || exit 0; sleep 0.1; done
  echo "PulseAudio did not stop" >&2; exit 1
fi

if [ "$(id -u)" != 0 ]; then
  echo "run as root (it starts a system-wide PulseAudio)" >&2; exit 1
fi
if ! command -v pulseaudio >/dev/null || ! command -v pactl >/dev/null \
   || ! ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1; then
  ./packaging/install-deps.sh
fi

if running; then
  if ours; then echo "audio test server: running"; exit 0; fi
  # Somebody else's server (a desktop session): add the virtual speaker to it and make its
  # monitor the default source, which is what the tests need.
  echo "a PulseAudio server runs already: adding emo_speaker to it and making its monitor the default source" >&2
  pactl load-module module-null-sink sink_name=emo_speaker \
    sink_properties=device.description=EMO-test-speaker >/dev/null
  pactl set-default-source emo_speaker.monitor
  exit 0
fi

mkdir -p "$state"
chmod 755 "$state"
cat >"$state/emo.pa" <<'EOF'
# PulseAudio script of packaging/audio-test-env.sh
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=emo_speaker sink_properties=device.description=EMO-test-speaker
set-default-sink emo_speaker
set-default-source emo_speaker.monitor
EOF
chmod 644 "$state/emo.pa"
# --system: the socket is /var/run/pulse/native, where every client (and ALSA's pulse plugin)
# looks without configuration. -n: only our script, no hardware detection.
pulseaudio --system --daemonize=yes --disallow-exit --disallow-module-loading=no --exit-idle-time=-1 \
  -n -F "$state/emo.pa" --log-target=file:"$state/pulseaudio.log" >/dev/null 2>&1 || true
for _ in $(seq 100); do
  if running && ours; then echo "audio test server: started"; exit 0; fi
  sleep 0.1
done
echo "PulseAudio did not start; its log:" >&2
tail -20 "$state/pulseaudio.log" >&2 || true
exit 1

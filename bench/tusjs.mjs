// tusjs.mjs uploads every file of a directory (or one file) to a TUS server with
// tus-js-client, N in flight, one PATCH per file (chunkSize Infinity), and prints one line:
//   files=N bytes=B seconds=S cpu_ms=C
// Usage: node bench/tusjs.mjs ENDPOINT PATH [IN_FLIGHT] [with-upload]
// It is bench.sh's peer; it checks every answer (a failed upload exits non-zero).
import fs from 'node:fs'
import path from 'node:path'
import * as tus from 'tus-js-client'

const [endpoint, target, inFlightArg, mode] = process.argv.slice(2)
const inFlight = Number(inFlightArg || 8)
const st = fs.statSync(target)
const files = st.isDirectory()
  ? fs.readdirSync(target).filter((n) => !n.endsWith('.chute.json')).map((n) => path.join(target, n))
  : [target]

function upload(file) {
  return new Promise((resolve, reject) => {
    const size = fs.statSync(file).size
    const u = new tus.Upload(fs.createReadStream(file), {
      endpoint,
      uploadSize: size,
      chunkSize: Infinity,
      retryDelays: null,
      uploadDataDuringCreation: mode === 'with-upload',
      metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
      onError: reject,
      onSuccess: () => resolve(size),
    })
    u.start()
  })
}

const cpu0 = process.cpuUsage()
const t0 = process.hrtime.bigint()
let next = 0
let bytes = 0
async function lane() {
  while (next < files.length) {
    const f = files[next++]
    bytes += await upload(f)
  }
}
await Promise.all(Array.from({ length: Math.min(inFlight, files.length) }, lane))
const secs = Number(process.hrtime.bigint() - t0) / 1e9
const cpu = process.cpuUsage(cpu0)
console.log(`files=${files.length} bytes=${bytes} seconds=${secs.toFixed(3)} cpu_ms=${((cpu.user + cpu.system) / 1000).toFixed(0)}`)

/// The script inside a report page and a consent receipt page (Specs/view.md §8.3, §8.6), in parts: `core` reads
/// the page's JSON, checks signed checkpoints (the company's signature and other members' cosignatures) and
/// receipts with WebCrypto (SHA-256, Ed25519; RFC 9162 inclusion proof; C2SP signed notes and key ids,
/// Specs/format.md §7–§8) and decodes each proven entry (CBOR); `derivation` re-derives the view's facts from the
/// proven entries (§8.5, as `Rederivation` does); `digest` recomputes the view digest (§6.2, as `ViewDigest` does);
/// `reportRows` and `ReceiptPage.rows` check each row of their page against what was proven and mark it. No network,
/// no library. Its labels mirror `Labels`.
enum ReportScript {
    /// The report page's script.
    static var source: String { prelude + core + derivation + digest + reportRows + epilogue }

    static let prelude = #"""
        (async () => {
        'use strict';
        const data = JSON.parse(document.getElementById('report-data').textContent);

        """#

    static let epilogue = #"""
        })().catch((err) => {
          document.body.dataset.verification = 'error';
          const t = document.getElementById('summary-title');
          if (t) t.textContent = '\u2717 The checks could not run in this browser: ' + (err && err.message ? err.message : err);
          const s = document.getElementById('summary');
          if (s) s.className = 'summary no';
        });

        """#

    static let core = #"""
        const te = new TextEncoder();
        const td = new TextDecoder('utf-8', { fatal: true });
        const b64 = (s) => { if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new Error('not base64'); return Uint8Array.from(atob(s), (c) => c.charCodeAt(0)); };
        const hex = (a) => Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
        const cat = (...p) => { const o = new Uint8Array(p.reduce((n, x) => n + x.length, 0)); let i = 0; for (const x of p) { o.set(x, i); i += x.length; } return o; };
        const sha = async (...p) => new Uint8Array(await crypto.subtle.digest('SHA-256', cat(...p)));
        const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
        const refText = (b) => 'ref:' + btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        const iso = (ms) => { const n = Number(ms); let s = new Date(n).toISOString(); if (n % 1000 === 0) s = s.slice(0, 19) + 'Z'; return s; };
        const when = (t) => t.replace(/\.[0-9]+Z$/, 'Z').replace('T', ' ').replace('Z', ' UTC');
        const canon = (v) => Array.isArray(v) ? '[' + v.map(canon).join(',') + ']'
          : (v !== null && typeof v === 'object') ? '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}'
          : JSON.stringify(v);
        const own = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

        // Labels, as the page was written (Labels.swift).
        const members = {};
        for (const m of data.consortium.members) members[m.org] = m;
        const company = (o) => own(members, o) ? members[o].name : o;
        const companies = (l) => l && l.length ? l.map(company).join(', ') : '\u2014';
        const code = (c) => (c.includes(':') ? c.slice(c.indexOf(':') + 1) : c).replace(/([a-z])([A-Z])/g, (m, a, b) => a + ' ' + b.toLowerCase());
        const codes = (l) => l && l.length ? l.map(code).join(', ') : '\u2014';
        const label = (table, k) => k === undefined || k === null ? '\u2014' : own(table, k) ? table[k] : k;
        const channels = { web: 'Web', app: 'App', email: 'Email', sms: 'SMS', voice: 'Phone', chat: 'Chat', social: 'Social media', store: 'In store', iot: 'Device', post: 'Post' };
        const events = { give: 'Consent given', withdraw: 'Consent withdrawn', refuse: 'Consent refused', request: 'Consent requested', renew: 'Consent renewed', revoke: 'Consent revoked', object: 'Objection', invalidate: 'Consent invalidated' };
        const states = { unknown: 'Unknown', requested: 'Requested', given: 'Given', refused: 'Refused', withdrawn: 'Withdrawn', revoked: 'Revoked', expired: 'Expired', renewed: 'Renewed', objected: 'Objected', invalidated: 'Invalidated' };
        const refLabel = (r) => r ? r.org + '/' + r.seq : '\u2014';
        const what = (f) => f.kind === 'consent' ? label(events, f.event) + ' \u2014 ' + codes(f.purposes)
          : f.kind === 'interaction' ? f.interaction + ' \u2014 ' + codes(f.purposes)
          : f.kind === 'share' ? 'Data shared with ' + company(f.recipient) + ' \u2014 ' + codes(f.dataCategories)
          : f.kind === 'link' ? 'Identifiers linked' : f.kind === 'unlink' ? 'Identifiers unlinked' : 'What the company had seen of the others';
        const agent = (f) => f.agent ? f.agent.kind + ' ' + f.agent.id + (f.agent.onBehalfOf ? ' for ' + company(f.agent.onBehalfOf) : '') : '\u2014';

        // Deterministic CBOR (Specs/format.md §2): integers as BigInt, maps as Map.
        function cbor(b) {
          let i = 0;
          const need = (n) => { if (i + n > b.length) throw new Error('entry bytes end early'); };
          function item() {
            need(1);
            const ib = b[i++], mt = ib >> 5, ai = ib & 31;
            let v;
            if (ai < 24) v = BigInt(ai);
            else if (ai <= 27) { const n = 1 << (ai - 24); need(n); v = 0n; for (let k = 0; k < n; k++) v = (v << 8n) | BigInt(b[i++]); }
            else throw new Error('indefinite or reserved item');
            switch (mt) {
              case 0: return v;
              case 2: { const n = Number(v); need(n); const r = b.slice(i, i + n); i += n; return r; }
              case 3: { const n = Number(v); need(n); const r = td.decode(b.slice(i, i + n)); i += n; return r; }
              case 4: { const a = []; for (let k = 0n; k < v; k++) a.push(item()); return a; }
              case 5: { const m = new Map(); for (let k = 0n; k < v; k++) { const key = item(); m.set(key, item()); } return m; }
              case 7: if (ai === 20) return false; if (ai === 21) return true; if (ai === 22) return null;
              default: throw new Error('unexpected CBOR item');
            }
          }
          const v = item();
          if (i !== b.length) throw new Error('bytes after the entry');
          return v;
        }

        // Keys: name+keyid+base64(0x01 ‖ public key); the key id must be SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]. The
        // same key cosigns under the id of type 0x04 (c2sp.org/tlog-cosignature).
        const keys = {};
        for (const m of data.consortium.members) {
          const k = m.verifierKey, a = k.indexOf('+'), z = k.indexOf('+', a + 1);
          const name = k.slice(0, a);
          let raw;
          try { raw = b64(k.slice(z + 1)); } catch (e) { continue; }
          if (raw.length !== 33 || raw[0] !== 1) continue;
          const pub = raw.slice(1);
          const id = (await sha(te.encode(name), new Uint8Array([0x0a, 0x01]), pub)).slice(0, 4);
          if (hex(id) !== k.slice(a + 1, z).toLowerCase()) continue;
          const cosignerID = (await sha(te.encode(name), new Uint8Array([0x0a, 0x04]), pub)).slice(0, 4);
          keys[name] = { org: m.org, pub, id, cosignerID, key: null };
        }
        const ed25519 = async (k) => k.key || (k.key = await crypto.subtle.importKey('raw', k.pub, { name: 'Ed25519' }, false, ['verify']));

        // A signed checkpoint (C2SP signed note): its log's signature must verify; other members' cosignatures are
        // checked and listed. Each note is checked once.
        const notes = new Map();
        function checkpoint(note) {
          if (!notes.has(note)) { const p = signedCheckpoint(note); p.catch(() => {}); notes.set(note, p); }
          return notes.get(note);
        }
        async function signedCheckpoint(note) {
          const cut = note.lastIndexOf('\n\n');
          if (cut < 0) throw new Error('the checkpoint is not signed');
          const body = note.slice(0, cut + 1), lines = body.split('\n');
          if (lines.length !== 4 || lines[3] !== '' || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error('the checkpoint is malformed');
          const origin = lines[0], root = b64(lines[2]);
          if (root.length !== 32 || btoa(String.fromCharCode(...root)) !== lines[2]) throw new Error('the checkpoint is malformed');
          if (!own(keys, origin)) throw new Error('the checkpoint is not of a company of this consortium');
          let signed = false;
          const cosigners = new Set();
          for (const line of note.slice(cut + 2).split('\n')) {
            if (!line.startsWith('\u2014 ')) continue;
            const [name, s64] = line.slice(2).split(' ');
            if (!own(keys, name) || !s64) continue;
            const k = keys[name];
            let s;
            try { s = b64(s64); } catch (e) { continue; }
            if (name === origin && s.length === 68 && same(s.slice(0, 4), k.id)) {
              if (!signed) signed = await crypto.subtle.verify({ name: 'Ed25519' }, await ed25519(k), s.slice(4), te.encode(body));
            } else if (name !== origin && s.length === 76 && same(s.slice(0, 4), k.cosignerID)) {
              let time = 0n;
              for (const x of s.slice(4, 12)) time = (time << 8n) | BigInt(x);
              const message = te.encode('cosignature/v1\ntime ' + time + '\n' + body);
              if (await crypto.subtle.verify({ name: 'Ed25519' }, await ed25519(k), s.slice(12), message)) cosigners.add(k.org);
            }
          }
          if (!signed) throw new Error('the company\u2019s signature on the checkpoint does not verify');
          const orgs = data.consortium.members.map((m) => m.org);
          return { origin, org: keys[origin].org, size: BigInt(lines[1]), root, cosigners: orgs.filter((o) => cosigners.has(o)) };
        }

        // A receipt (C2SP tlog-proof@v1 with the entry in `extra`): the entry's facts, what it cites and its
        // checkpoint, proven; or an error.
        async function receipt(text) {
          const blank = text.indexOf('\n\n');
          if (blank < 0) throw new Error('the receipt has no checkpoint');
          const head = text.slice(0, blank).split('\n');
          if (head[0] !== 'c2sp.org/tlog-proof@v1' || !head[1] || !head[1].startsWith('extra ') || !head[2] || !/^index (0|[1-9][0-9]*)$/.test(head[2]))
            throw new Error('the receipt is malformed');
          const entry = b64(head[1].slice(6));
          const index = BigInt(head[2].slice(6));
          const proof = head.slice(3).map(b64);
          if (proof.some((p) => p.length !== 32)) throw new Error('the receipt is malformed');
          const cp = await checkpoint(text.slice(blank + 2));
          // RFC 9162 §2.1.3.2
          let r = await sha(new Uint8Array([0]), entry);
          const leaf = r;
          if (index >= cp.size) throw new Error('the proof is for an entry past the checkpoint');
          let fn = index, sn = cp.size - 1n;
          for (const p of proof) {
            if (sn === 0n) throw new Error('the inclusion proof is too long');
            if ((fn & 1n) === 1n || fn === sn) {
              r = await sha(new Uint8Array([1]), p, r);
              if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
            } else r = await sha(new Uint8Array([1]), r, p);
            fn >>= 1n; sn >>= 1n;
          }
          if (sn !== 0n || !same(r, cp.root)) throw new Error('the inclusion proof does not lead to the signed checkpoint');
          const e = cbor(entry);
          if (e.get('log') !== cp.origin || e.get('seq') !== index) throw new Error('the receipt proves another entry');
          const f = facts(e, hex(leaf), cp.org);
          // Per other org, the highest seq the entry refers to (deps, consentRef, derivedFrom).
          const cites = Object.create(null);
          for (const x of [...(e.get('deps') || []), ...(f.consentRef ? [f.consentRef] : []), ...(f.derivedFrom || [])]) {
            const o = Array.isArray(x) ? x[0] : x.org, s = Number(Array.isArray(x) ? x[1] : x.seq);
            if (o !== f.org) cites[o] = Math.max(cites[o] === undefined ? 0 : cites[o], s);
          }
          return { facts: f, cites, checkpoint: cp };
        }

        // The facts of an entry, exactly as the report writes them (EntryFacts.json).
        function facts(e, leaf, org) {
          const b = e.get('body'), kind = e.get('kind'), hlc = e.get('hlc');
          const f = { ref: { org, seq: Number(e.get('seq')), leaf }, kind, org, company: company(org),
            hlc: hlc[0] + '.' + hlc[1], recordedAt: iso(hlc[0]), occurredAt: iso(b.get('occurredAt')),
            skewMs: Number(hlc[0] - b.get('occurredAt')),
            subjects: (kind === 'heads' ? [] : kind === 'link' || kind === 'unlink' ? b.get('subjects') : [b.get('subject')]).map(refText) };
          const ref = (r) => ({ org: r[0], seq: Number(r[1]), leaf: hex(r[2]) });
          const put = (k, v) => { if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) f[k] = v; };
          for (const k of ['channel', 'purposes', 'legalBasis', 'event', 'method', 'controllers', 'recipients']) put(k, b.get(k));
          if (b.has('expiresAt')) f.expiresAt = iso(b.get('expiresAt'));
          if (b.has('notice')) f.notice = { id: b.get('notice').get('id'), version: b.get('notice').get('version') };
          put('interaction', b.get('interaction'));
          if (b.has('agent')) {
            const a = b.get('agent'), id = a.get('id');
            f.agent = { id: id instanceof Uint8Array ? refText(id) : id, kind: a.get('kind') };
            if (a.has('onBehalfOf')) f.agent.onBehalfOf = a.get('onBehalfOf');
          }
          if (b.has('consentRef')) f.consentRef = ref(b.get('consentRef'));
          if (b.has('derivedFrom')) f.derivedFrom = b.get('derivedFrom').map(ref);
          put('recipient', b.get('recipient'));
          put('dataCategories', b.get('dataCategories'));
          return f;
        }

        // Checks every row that names a fact (`data-fact="<section>:<index>"`) with `checks[section]`, which gives
        // the text each `data-field` cell must read, and marks it verified or not, with the reason. A row must show
        // every field its check gives, each once. With `counts` (section → how many items the report's data has),
        // the page must show each item of each section exactly once: a row left out, or shown twice, is a problem
        // of the page, counted as a failure and returned in `problems`.
        async function markRows(checks, claimOf, counts) {
          let ok = 0, failed = 0;
          const problems = [];
          const rows = Array.from(document.querySelectorAll('[data-fact]'));
          await Promise.all(rows.map(async (row) => {
            const [section, i] = row.dataset.fact.split(':');
            const mark = row.querySelector('[data-mark]');
            try {
              const claim = claimOf(section, Number(i));
              if (claim === undefined || claim === null || !own(checks, section)) throw new Error('this row is not in the report\u2019s data');
              const expected = await checks[section](claim);
              const cells = Array.from(row.querySelectorAll('[data-field]'));
              const shown = cells.map((cell) => cell.dataset.field);
              if (canon(shown.slice().sort()) !== canon(Object.keys(expected).sort())) throw new Error('the page does not show each checked part of this record once');
              for (const cell of cells) {
                if (cell.textContent !== expected[cell.dataset.field]) throw new Error('the page shows \u201c' + cell.textContent + '\u201d where the signed records say \u201c' + expected[cell.dataset.field] + '\u201d');
              }
              row.dataset.verified = 'yes';
              mark.className = 'mark ok';
              mark.textContent = '\u2713 Verified';
              ok++;
            } catch (err) {
              row.dataset.verified = 'no';
              row.classList.add('no');
              mark.className = 'mark no';
              mark.textContent = '\u2717 Not verified';
              const why = document.createElement('span');
              why.className = 'why';
              why.textContent = err && err.message ? err.message : String(err);
              mark.appendChild(why);
              failed++;
            }
          }));
          for (const section of Object.keys(counts || {})) {
            const shown = rows.map((r) => r.dataset.fact.split(':')).filter((p) => p[0] === section).map((p) => p[1]);
            const want = counts[section];
            const each = shown.length === want && new Set(shown).size === want && shown.every((x) => /^(0|[1-9][0-9]*)$/.test(x) && Number(x) < want);
            if (!each) {
              problems.push('the page shows ' + shown.length + ' rows of \u201c' + section + '\u201d where the report\u2019s data holds ' + want + ', each to be shown once');
              failed++;
            }
          }
          document.body.dataset.verified = String(ok);
          document.body.dataset.failed = String(failed);
          return { ok, failed, problems };
        }

        """#
}

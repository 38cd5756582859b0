/// The script inside a report page (Specs/view.md §8.3). It reads the report's JSON from the page, checks every
/// receipt with WebCrypto (SHA-256, Ed25519; RFC 9162 inclusion proof; C2SP signed-note checkpoint and key id,
/// Specs/format.md §7–§8), decodes each proven entry (CBOR) and compares it with the fact the page shows, cell by
/// cell, then marks each row and writes the summary. No network, no library. Its labels mirror `Labels`.
enum ReportScript {
    static let source = #"""
        (async () => {
        'use strict';
        const data = JSON.parse(document.getElementById('report-data').textContent);
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

        // Labels, as the page was written (Labels.swift).
        const members = {};
        for (const m of data.consortium.members) members[m.org] = m;
        const company = (o) => members[o] ? members[o].name : o;
        const companies = (l) => l && l.length ? l.map(company).join(', ') : '—';
        const code = (c) => (c.includes(':') ? c.slice(c.indexOf(':') + 1) : c).replace(/([a-z])([A-Z])/g, (m, a, b) => a + ' ' + b.toLowerCase());
        const codes = (l) => l && l.length ? l.map(code).join(', ') : '—';
        const channels = { web: 'Web', app: 'App', email: 'Email', sms: 'SMS', voice: 'Phone', chat: 'Chat', social: 'Social media', store: 'In store', iot: 'Device', post: 'Post' };
        const events = { give: 'Consent given', withdraw: 'Consent withdrawn', refuse: 'Consent refused', request: 'Consent requested', renew: 'Consent renewed', revoke: 'Consent revoked', object: 'Objection', invalidate: 'Consent invalidated' };
        const states = { unknown: 'Unknown', requested: 'Requested', given: 'Given', refused: 'Refused', withdrawn: 'Withdrawn', revoked: 'Revoked', expired: 'Expired', renewed: 'Renewed', objected: 'Objected', invalidated: 'Invalidated' };
        const eventOf = { given: 'give', renewed: 'renew', withdrawn: 'withdraw', refused: 'refuse', revoked: 'revoke', requested: 'request', objected: 'object', invalidated: 'invalidate' };
        const refLabel = (r) => r ? r.org + '/' + r.seq : '—';
        const what = (f) => f.kind === 'consent' ? (events[f.event] || f.event) + ' — ' + codes(f.purposes)
          : f.kind === 'interaction' ? f.interaction + ' — ' + codes(f.purposes)
          : f.kind === 'share' ? 'Data shared with ' + company(f.recipient) + ' — ' + codes(f.dataCategories)
          : f.kind === 'link' ? 'Identifiers linked' : 'Identifiers unlinked';
        const agent = (f) => f.agent ? f.agent.kind + ' ' + f.agent.id + (f.agent.onBehalfOf ? ' for ' + company(f.agent.onBehalfOf) : '') : '—';

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

        // Keys: name+keyid+base64(0x01 ‖ public key); the key id must be SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4].
        const keys = {};
        for (const m of data.consortium.members) {
          const k = m.verifierKey, a = k.indexOf('+'), z = k.indexOf('+', a + 1);
          const name = k.slice(0, a), raw = b64(k.slice(z + 1));
          if (raw.length !== 33 || raw[0] !== 1) continue;
          const pub = raw.slice(1);
          const id = (await sha(te.encode(name), new Uint8Array([0x0a, 0x01]), pub)).slice(0, 4);
          if (hex(id) !== k.slice(a + 1, z).toLowerCase()) continue;
          keys[name] = { org: m.org, pub, id, key: null };
        }
        const signatureChecks = new Map();
        async function signed(origin, body, sigLines) {
          const key = keys[origin];
          if (!key) throw new Error('the checkpoint is not of a company of this consortium');
          if (!key.key) key.key = await crypto.subtle.importKey('raw', key.pub, { name: 'Ed25519' }, false, ['verify']);
          for (const line of sigLines) {
            if (!line.startsWith('\u2014 ')) continue;
            const [name, s64] = line.slice(2).split(' ');
            if (name !== origin || !s64) continue;
            const s = b64(s64);
            if (s.length !== 68 || !same(s.slice(0, 4), key.id)) continue;
            if (await crypto.subtle.verify({ name: 'Ed25519' }, key.key, s.slice(4), te.encode(body))) return;
          }
          throw new Error('the company\u2019s signature on the checkpoint does not verify');
        }

        // A receipt (C2SP tlog-proof@v1 with the entry in `extra`): the entry, proven, or an error.
        async function receipt(text) {
          const blank = text.indexOf('\n\n');
          if (blank < 0) throw new Error('the receipt has no checkpoint');
          const head = text.slice(0, blank).split('\n');
          if (head[0] !== 'c2sp.org/tlog-proof@v1' || !head[1] || !head[1].startsWith('extra ') || !head[2] || !head[2].startsWith('index '))
            throw new Error('the receipt is malformed');
          const entry = b64(head[1].slice(6));
          const index = BigInt(head[2].slice(6));
          const proof = head.slice(3).map(b64);
          if (proof.some((p) => p.length !== 32)) throw new Error('the receipt is malformed');
          const note = text.slice(blank + 2), cut = note.lastIndexOf('\n\n');
          if (cut < 0) throw new Error('the checkpoint is not signed');
          const body = note.slice(0, cut + 1), lines = body.split('\n');
          if (lines.length !== 4 || lines[3] !== '' || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error('the checkpoint is malformed');
          const origin = lines[0], size = BigInt(lines[1]), root = b64(lines[2]);
          if (!signatureChecks.has(note)) signatureChecks.set(note, signed(origin, body, note.slice(cut + 2).split('\n')));
          await signatureChecks.get(note);
          // RFC 9162 §2.1.3.2
          let r = await sha(new Uint8Array([0]), entry);
          const leaf = r;
          if (index >= size) throw new Error('the proof is for an entry past the checkpoint');
          let fn = index, sn = size - 1n;
          for (const p of proof) {
            if (sn === 0n) throw new Error('the inclusion proof is too long');
            if ((fn & 1n) === 1n || fn === sn) {
              r = await sha(new Uint8Array([1]), p, r);
              if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
            } else r = await sha(new Uint8Array([1]), r, p);
            fn >>= 1n; sn >>= 1n;
          }
          if (sn !== 0n || !same(r, root)) throw new Error('the inclusion proof does not lead to the signed checkpoint');
          const e = cbor(entry);
          if (e.get('log') !== origin || e.get('seq') !== index) throw new Error('the receipt proves another entry');
          return facts(e, hex(leaf), keys[origin].org);
        }

        // The facts of an entry, exactly as the report writes them (EntryFacts.json).
        function facts(e, leaf, org) {
          const b = e.get('body'), kind = e.get('kind'), hlc = e.get('hlc');
          const f = { ref: { org, seq: Number(e.get('seq')), leaf }, kind, org, company: company(org),
            hlc: hlc[0] + '.' + hlc[1], recordedAt: iso(hlc[0]), occurredAt: iso(b.get('occurredAt')),
            skewMs: Number(hlc[0] - b.get('occurredAt')),
            subjects: (kind === 'link' || kind === 'unlink' ? b.get('subjects') : [b.get('subject')]).map(refText) };
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

        const proven = new Map();
        const entryOf = async (r) => {
          const p = proven.get(r.org + '/' + r.seq);
          if (!p) throw new Error('there is no receipt for ' + refLabel(r));
          const f = await p;
          if (f.ref.leaf !== r.leaf) throw new Error(refLabel(r) + ' is cited with another hash');
          return f;
        };
        for (const x of data.receipts) {
          const p = receipt(x.receipt).then((f) => { if (f.ref.org !== x.ref.org || String(f.ref.seq) !== String(x.ref.seq) || f.ref.leaf !== x.ref.leaf) throw new Error('the receipt proves another entry'); return f; });
          p.catch(() => {});
          proven.set(x.ref.org + '/' + x.ref.seq, p);
        }
        const deciding = async (d) => {
          const f = await entryOf(d.ref);
          if (f.hlc !== d.hlc || f.occurredAt !== d.occurredAt || (d.event || undefined) !== f.event) throw new Error(refLabel(d.ref) + ' is not shown as recorded');
          return f;
        };

        // Each row: the fact it claims, checked against the proven entry; then each cell against the fact.
        const checks = {
          async timeline(c) {
            const f = await entryOf(c.ref);
            const { sharedIn, ...shown } = c;
            if (canon(shown) !== canon(f)) {
              const k = [...new Set([...Object.keys(shown), ...Object.keys(f)])].sort().find((k) => canon(shown[k]) !== canon(f[k]));
              const say = (v) => v === undefined ? 'nothing' : '\u201c' + (typeof v === 'object' ? canon(v) : v) + '\u201d';
              throw new Error('the ' + k + ' shown (' + say(shown[k]) + ') is not what the signed entry says (' + say(f[k]) + ')');
            }
            return { when: when(f.recordedAt), company: company(f.org), channel: f.channel ? (channels[f.channel] || f.channel) : '—',
              what: what(f), agent: agent(f), basis: f.legalBasis ? code(f.legalBasis) : '—', relied: refLabel(f.consentRef), entry: refLabel(f.ref) };
          },
          async shares(c) {
            const cells = await checks.timeline(c);
            const f = await entryOf(c.ref);
            return { when: cells.when, company: cells.company, recipient: company(f.recipient), categories: codes(f.dataCategories), purposes: codes(f.purposes), entry: cells.entry };
          },
          async consents(c) {
            const f = await deciding(c.decidedBy);
            if (f.kind !== 'consent' || !f.controllers.includes(c.controller) || !f.purposes.includes(c.purpose)) throw new Error(refLabel(f.ref) + ' is not a consent of this company for this purpose');
            const expired = f.expiresAt !== undefined && Date.parse(f.expiresAt) <= Date.parse(data.at);
            if (c.state === 'expired' ? !((f.event === 'give' || f.event === 'renew') && expired) : (eventOf[c.state] !== f.event || ((f.event === 'give' || f.event === 'renew') && expired)))
              throw new Error(refLabel(f.ref) + ' records a ' + f.event + ', not this status');
            if (c.grant !== null && (canon(c.grant) !== canon(f.ref) || (c.expiresAt || undefined) !== f.expiresAt || canon(c.recipients) !== canon(f.recipients || [])))
              throw new Error('expiry or recipients differ from ' + refLabel(f.ref));
            return { controller: company(c.controller), purpose: code(c.purpose), state: states[c.state], since: when(f.recordedAt),
              expires: c.expiresAt ? when(c.expiresAt) : '—', recipients: companies(c.recipients), entry: refLabel(f.ref) };
          },
          async compliance(c) {
            const f = await entryOf(c.interaction);
            if (f.kind !== 'interaction' || c.org !== f.org || c.subject !== f.subjects[0] || c.channel !== f.channel || c.legalBasis !== f.legalBasis
                || canon(c.purposes) !== canon(f.purposes) || c.hlc !== f.hlc || c.occurredAt !== f.occurredAt || (c.onBehalfOf || undefined) !== (f.agent && f.agent.onBehalfOf))
              throw new Error('the contact shown differs from the signed entry');
            for (const d of c.deciding) await deciding(d);
            return { when: when(f.recordedAt), company: company(f.org), what: what(f) };
          },
          async links(c) {
            const f = await deciding(c.decidedBy);
            if (f.kind !== (c.linked ? 'link' : 'unlink') || canon([...c.refs].sort()) !== canon([...f.subjects].sort())) throw new Error('the link shown differs from the signed entry');
            return { refs: f.subjects.join(' \u2194 '), linked: c.linked ? 'Linked' : 'Unlinked', entry: refLabel(f.ref) };
          },
        };

        let ok = 0, failed = 0;
        const rows = Array.from(document.querySelectorAll('tr[data-fact]'));
        await Promise.all(rows.map(async (row) => {
          const [section, i] = row.dataset.fact.split(':');
          const mark = row.querySelector('[data-mark]');
          try {
            const claim = (data[section] || [])[Number(i)];
            if (!claim || !checks[section]) throw new Error('this row is not in the report\u2019s data');
            const expected = await checks[section](claim);
            for (const cell of row.querySelectorAll('[data-field]')) {
              if (cell.textContent !== expected[cell.dataset.field]) throw new Error('the page shows \u201c' + cell.textContent + '\u201d where the signed entry says \u201c' + expected[cell.dataset.field] + '\u201d');
            }
            row.dataset.verified = 'yes';
            mark.className = 'mark ok';
            mark.textContent = '\u2713 Verified';
            ok++;
          } catch (err) {
            row.dataset.verified = 'no';
            row.className = 'no';
            mark.className = 'mark no';
            mark.textContent = '\u2717 Not verified';
            const why = document.createElement('span');
            why.className = 'why';
            why.textContent = err && err.message ? err.message : String(err);
            mark.appendChild(why);
            failed++;
          }
        }));
        const summary = document.getElementById('summary');
        const total = ok + failed;
        summary.className = 'summary ' + (failed === 0 ? 'ok' : 'no');
        document.getElementById('summary-title').textContent = failed === 0
          ? '\u2713 All ' + total + ' facts in this report are verified'
          : '\u2717 ' + failed + ' of ' + total + ' facts could not be verified';
        document.getElementById('summary-detail').textContent = failed === 0
          ? 'Each one is in the signed log of the company that recorded it, exactly as shown. Checked in your browser just now, with the keys listed at the end.'
          : 'Rows marked \u2717 differ from what the companies signed, or their proof does not check out: do not rely on them. The other ' + ok + ' are verified.';
        document.body.dataset.verified = String(ok);
        document.body.dataset.failed = String(failed);
        document.body.dataset.verification = 'done';
        })().catch((err) => {
          document.body.dataset.verification = 'error';
          const t = document.getElementById('summary-title');
          if (t) t.textContent = '\u2717 The checks could not run in this browser: ' + (err && err.message ? err.message : err);
          const s = document.getElementById('summary');
          if (s) s.className = 'summary no';
        });
        """#
}

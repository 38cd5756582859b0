extension ReportScript {
    /// Specs/view.md §8.5 in the page: identity, consent states and findings recomputed from the proven entries
    /// alone, rule for rule as `Rederivation` (Swift) computes them; the transition table is §4.2's.
    static let derivation = #"""
        // `pool`: the proven entries ({facts, cites}); `refs`: the person's refs; `frontier`: each log's size.
        const EVENTS = new Set(['request', 'give', 'refuse', 'withdraw', 'revoke', 'renew', 'object', 'invalidate']);
        function derivation(pool, refs, frontier) {
          const E = pool.map((p) => { const [w, c] = p.facts.hlc.split('.').map(Number);
            return { f: p.facts, cites: p.cites, wall: w, counter: c, occurred: Date.parse(p.facts.occurredAt), expires: p.facts.expiresAt ? Date.parse(p.facts.expiresAt) : 0 }; });
          // The order key of §2: hlc, then org id bytewise, then seq.
          const precedes = (a, b) => a.wall !== b.wall ? a.wall < b.wall : a.counter !== b.counter ? a.counter < b.counter
            : a.f.org !== b.f.org ? a.f.org < b.f.org : a.f.ref.seq < b.f.ref.seq;
          const byPosition = new Map(E.map((e) => [e.f.ref.org + '/' + e.f.ref.seq, e]));
          const consentEntries = E.filter((e) => e.f.kind === 'consent' && e.f.subjects.length === 1).sort((a, b) => precedes(a, b) ? -1 : 1);
          const linksOf = new Map();
          for (const e of E) if ((e.f.kind === 'link' || e.f.kind === 'unlink') && e.f.subjects.length === 2)
            for (const s of new Set(e.f.subjects)) { if (!linksOf.has(s)) linksOf.set(s, []); linksOf.get(s).push(e); }
          const list = (v) => v || [];
          // A scope (§7.1): {org, seq, cited, before}; null sees the whole frontier.
          const sees = (e, s) => !s || (e.f.org === s.org ? e.f.ref.seq <= s.seq : s.cited[e.f.org] !== undefined && e.f.ref.seq <= s.cited[e.f.org])
            || (s.before !== null && precedes(e, s.before));
          const knownCited = (org, seq) => { const out = Object.create(null);
            for (const e of E) if (e.f.org === org && e.f.ref.seq <= seq) for (const o in e.cites) out[o] = Math.max(out[o] === undefined ? 0 : out[o], e.cites[o]);
            return out; };
          // §3: the latest link or unlink of each pair touching `touching`, and the person of a ref.
          function links(touching, scope) {
            const best = new Map();
            for (const r of touching) for (const e of linksOf.get(r) || []) {
              if (!sees(e, scope)) continue;
              const k = [...e.f.subjects].sort().join(' '), b = best.get(k);
              if (!b || precedes(b, e)) best.set(k, e);
            }
            return best;
          }
          function person(r, scope) {
            const seen = new Set([r]), queue = [r];
            while (queue.length) {
              const x = queue.pop();
              for (const e of links([x], scope).values()) if (e.f.kind === 'link') for (const y of e.f.subjects) if (!seen.has(y)) { seen.add(y); queue.push(y); }
            }
            return seen;
          }
          // §4: the transition table (ConsentMachine.next); null: the event is ignored.
          function next(state, ev) {
            if (state === 'invalidated') return null;
            if (ev === 'invalidate') return 'invalidated';
            if (ev === 'object') return 'objected';
            if (state === 'objected') return ev === 'give' ? 'given' : null;
            if (ev === 'give') return 'given';
            if (ev === 'request') return state === 'given' || state === 'renewed' ? null : 'requested';
            if (ev === 'renew') return state === 'given' || state === 'renewed' || state === 'expired' ? 'renewed' : null;
            return { refuse: 'refused', withdraw: 'withdrawn', revoke: 'revoked' }[ev];
          }
          const permits = (s) => s === 'given' || s === 'renewed';
          const effective = (p, t) => permits(p.status) && p.expiresAt !== 0 && p.expiresAt <= t ? 'expired' : p.status;
          const consentsOf = (who, scope, purpose) => consentEntries.filter((e) => who.has(e.f.subjects[0]) && sees(e, scope)
            && (purpose === undefined || list(e.f.purposes).includes(purpose)));
          function replay(entries, only) {
            const pairs = [];
            for (const e of entries) {
              if (!EVENTS.has(e.f.event)) continue;
              for (const p of list(e.f.purposes)) {
                if (only !== undefined && only !== p) continue;
                for (const c of list(e.f.controllers)) {
                  let x = pairs.find((q) => q.controller === c && q.purpose === p);
                  if (!x) { x = { controller: c, purpose: p, status: 'unknown', decidedBy: null, grant: null, expiresAt: 0, applied: 0, ignored: 0 }; pairs.push(x); }
                  const n = next(effective(x, e.wall), e.f.event);
                  if (n === null) { x.ignored++; continue; }
                  x.applied++; x.status = n; x.decidedBy = e;
                  if (permits(n)) { x.grant = e; x.expiresAt = e.expires; } else { x.grant = null; x.expiresAt = 0; }
                }
              }
            }
            return pairs;
          }
          // §5: may `org` process for `purpose` at `t`, on what the scope holds of `who`?
          function decide(who, org, purpose, t, scope) {
            const entries = consentsOf(who, scope, purpose);
            const pairs = replay(entries, purpose).filter((s) => s.decidedBy !== null);
            const mine = pairs.find((s) => s.controller === org);
            if (mine && mine.status === 'objected') return { allowed: false, state: mine, reason: 'objected' };
            const ordered = [...pairs].sort((a, b) => (a.controller === org) !== (b.controller === org) ? (a.controller === org ? -1 : 1)
              : a.controller < b.controller ? -1 : a.controller > b.controller ? 1 : 0);
            for (const s of ordered) if (permits(effective(s, t)) && (s.controller === org || list(s.grant.f.recipients).includes(org))) return { allowed: true, state: s };
            if (ordered.length && ordered[0].controller === org) return { allowed: false, state: ordered[0], reason: effective(ordered[0], t) };
            for (const s of ordered) {
              if (!entries.some((e) => (e.f.event === 'give' || e.f.event === 'renew') && list(e.f.controllers).includes(s.controller) && list(e.f.recipients).includes(org))) continue;
              const eff = effective(s, t);
              return { allowed: false, state: s, reason: permits(eff) ? 'not-recipient' : eff };
            }
            return { allowed: false, state: null, reason: 'no-consent' };
          }
          // §7.2: what blocks purpose `p` in a scope (its cause and deciding entry), or the grant relied on.
          function block(who, scope, actor, onBehalf, p, t, onConsent) {
            const pairs = replay(consentsOf(who, scope, p), p);
            for (const o of onBehalf ? [actor, onBehalf] : [actor]) {
              const s = pairs.find((x) => x.controller === o);
              if (s && s.status === 'objected') return { cause: 'objected', decidedBy: s.decidedBy };
            }
            if (!onConsent) return {};
            const d = decide(who, actor, p, t, scope);
            if (d.allowed) return { relied: d.state.grant };
            return { cause: d.reason === 'unknown' ? 'no-consent' : d.reason, decidedBy: d.state ? d.state.decidedBy : null };
          }
          function classify(e, cited, claimed) {
            const f = e.f;
            const known = { org: f.org, seq: f.ref.seq, cited, before: null };
            const global = { org: f.org, seq: f.ref.seq, cited, before: e };
            const knownPerson = person(f.subjects[0], known), globalPerson = person(f.subjects[0], global);
            const onConsent = f.legalBasis === 'dpv:Consent', onBehalf = f.agent && f.agent.onBehalfOf;
            let violation = null, lag = null;
            const relied = [];
            for (const p of list(f.purposes)) {
              const k = block(knownPerson, known, f.org, onBehalf, p, e.occurred, onConsent);
              if (k.cause) { if (!violation) violation = { p, ...k }; continue; }
              const g = block(globalPerson, global, f.org, onBehalf, p, e.occurred, onConsent);
              if (g.cause && !lag) lag = { p, ...g };
              if (k.relied && !relied.includes(k.relied)) relied.push(k.relied);
            }
            const flags = consentRefFlags(e, global, claimed);
            const out = { listed: true, classification: 'lawful', purpose: null, cause: null, lagMs: null, deciding: relied, flags, decidedBy: null };
            if (violation) Object.assign(out, { classification: 'violation', purpose: violation.p, cause: violation.cause,
              deciding: violation.decidedBy ? [violation.decidedBy] : [], decidedBy: violation.decidedBy || null });
            else if (lag) {
              Object.assign(out, { classification: 'propagation-lag', purpose: lag.p, cause: lag.cause });
              if (lag.decidedBy) Object.assign(out, { deciding: [lag.decidedBy, ...relied], lagMs: Math.max(0, e.wall - lag.decidedBy.wall), decidedBy: lag.decidedBy });
            } else out.listed = onConsent || flags.length > 0;
            return out;
          }
          // §7.3: the flags of the consent an interaction names.
          function consentRefFlags(e, global, claimed) {
            const f = e.f, r = f.consentRef;
            if (!r) return [];
            if (frontier[r.org] === undefined || r.seq >= frontier[r.org]) return ['unresolved'];
            const t = byPosition.get(r.org + '/' + r.seq);
            if (!t) throw new Error('the report does not carry ' + r.org + '/' + r.seq + ', the consent the interaction names');
            const c = t.f;
            if (c.ref.leaf !== r.leaf) return ['leaf-mismatch'];
            if (c.kind !== 'consent' || !EVENTS.has(c.event)) return ['not-consent'];
            const flags = [], other = !refs.has(c.subjects[0]), onBehalf = f.agent && f.agent.onBehalfOf;
            if (other) flags.push('other-person');
            if (list(f.purposes).some((p) => !list(c.purposes).includes(p))) flags.push('other-purpose');
            if (!list(c.controllers).includes(f.org) && !list(c.recipients).includes(f.org) && !(onBehalf && list(c.controllers).includes(onBehalf))) flags.push('not-for-actor');
            if (c.event !== 'give' && c.event !== 'renew') flags.push('not-in-force');
            else if (t.expires !== 0 && t.expires <= e.occurred) flags.push('not-in-force');
            else if (other) { if (claimed.includes('not-in-force')) flags.push('not-in-force'); }
            else {
              const shared = list(f.purposes).filter((p) => list(c.purposes).includes(p));
              const pairs = replay(consentsOf(person(c.subjects[0], global), global));
              if (!list(c.controllers).some((ctl) => shared.every((p) => pairs.some((s) => s.controller === ctl && s.purpose === p && s.grant === t && permits(effective(s, e.occurred))))))
                flags.push('not-in-force');
            }
            return flags;
          }
          return { entry: (org, seq) => byPosition.get(org + '/' + seq), knownCited, links, person, consentsOf, replay, effective, classify };
        }

        """#

    /// Specs/view.md §6.2 in the page: the view digest recomputed from the report's content, as
    /// `ReportChecker.digestInput` and `ViewDigest.encoding` compute it.
    static let digest = #"""
        // Deterministic CBOR (RFC 8949 §4.2.1): the shortest head for every length and number.
        function cborWriter() {
          const out = [];
          const head = (mt, n) => {
            n = BigInt(n);
            if (n < 0n) throw new Error('a negative number');
            const len = n < 24n ? 0 : n < 0x100n ? 1 : n < 0x10000n ? 2 : n < 0x100000000n ? 4 : 8;
            out.push((mt << 5) | (len === 0 ? Number(n) : { 1: 24, 2: 25, 4: 26, 8: 27 }[len]));
            for (let k = len - 1; k >= 0; k--) out.push(Number((n >> BigInt(8 * k)) & 0xffn));
          };
          return {
            uint: (n) => head(0, n), array: (n) => head(4, n), map: (n) => head(5, n),
            bytes: (b) => { head(2, b.length); out.push(...b); },
            text: (s) => { const b = te.encode(s); head(3, b.length); out.push(...b); },
            bool: (v) => out.push(v ? 0xf5 : 0xf4), nil: () => out.push(0xf6), result: () => new Uint8Array(out),
          };
        }
        const refBytes = (t) => { if (typeof t !== 'string' || !/^ref:[A-Za-z0-9_-]{43}$/.test(t)) throw new Error('an identifier is not a ref'); return b64(t.slice(4).replace(/-/g, '+').replace(/_/g, '/') + '='); };
        const hexBytes = (h) => { if (typeof h !== 'string' || !/^[0-9a-f]{64}$/.test(h)) throw new Error('a hash is not 64 hex digits'); return Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16)); };
        const bytewise = (a, b) => { for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i]; return a.length - b.length; };
        const textwise = (a, b) => bytewise(te.encode(a), te.encode(b));
        const ms = (t) => { const v = Date.parse(t); if (!Number.isFinite(v) || v < 0) throw new Error('a time is not RFC 3339'); return v; };
        // The order key of §2 from a report's `hlc` text, org and seq.
        const orderKey = (hlc, org, seq) => { const [w, c] = String(hlc).split('.').map(BigInt); return { w, c, org, seq: BigInt(seq) }; };
        const byOrder = (a, b) => a.w !== b.w ? (a.w < b.w ? -1 : 1) : a.c !== b.c ? (a.c < b.c ? -1 : 1) : a.org !== b.org ? textwise(a.org, b.org) : a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
        async function viewDigest() {
          const w = cborWriter();
          const ref = (r) => { w.array(3); w.text(r.org); w.uint(r.seq); w.bytes(hexBytes(r.leaf)); };
          const nullable = (v, put) => v === null || v === undefined ? w.nil() : put(v);
          w.map(data.atGiven ? 8 : 7);
          w.text('v'); w.uint(1);
          if (data.atGiven) { w.text('at'); w.uint(ms(data.at)); }
          w.text('refs');
          const refs = data.refs.map(refBytes).sort(bytewise);
          w.array(refs.length);
          for (const r of refs) w.bytes(r);
          w.text('links');
          const links = data.links.map((l) => { if (l.refs.length !== 2) throw new Error('an identity link does not name two refs'); return { a: refBytes(l.refs[0]), b: refBytes(l.refs[1]), l }; })
            .sort((x, y) => bytewise(x.a, y.a) || bytewise(x.b, y.b));
          w.array(links.length);
          for (const { a, b, l } of links) { w.array(4); w.bytes(a); w.bytes(b); w.bool(l.linked === true); ref(l.decidedBy.ref); }
          w.text('entries');
          const entries = data.timeline.map((t) => ({ k: orderKey(t.hlc, t.ref.org, t.ref.seq), r: t.ref })).sort((x, y) => byOrder(x.k, y.k));
          w.array(entries.length);
          for (const e of entries) ref(e.r);
          w.text('consents');
          const consents = [...data.consents].sort((x, y) => x.controller !== y.controller ? textwise(x.controller, y.controller) : textwise(x.purpose, y.purpose));
          w.array(consents.length);
          for (const c of consents) {
            w.array(6); w.text(c.controller); w.text(c.purpose); w.text(data.atGiven ? c.state : c.recorded);
            ref(c.decidedBy.ref); nullable(c.grant, ref); nullable(c.expiresAt, (x) => w.uint(ms(x)));
          }
          w.text('frontier');
          const logs = [...data.frontier].sort((x, y) => textwise(x.org, y.org));
          w.array(logs.length);
          for (const l of logs) {
            const root = hexBytes(l.rootHex);
            if (btoa(String.fromCharCode(...root)) !== l.root) throw new Error('a frontier log gives two roots');
            w.array(3); w.text(l.org); w.uint(l.size); w.bytes(root);
          }
          w.text('compliance');
          const findings = data.compliance.map((c) => ({ k: orderKey(c.hlc, c.interaction.org, c.interaction.seq), c })).sort((x, y) => byOrder(x.k, y.k));
          w.array(findings.length);
          for (const { c } of findings) {
            w.array(6); ref(c.interaction); w.text(c.classification);
            nullable(c.purpose, (p) => w.text(p)); nullable(c.lagMs, (l) => w.uint(Math.max(0, l)));
            w.array(c.deciding.length); for (const d of c.deciding) ref(d.ref);
            w.array(c.flags.length); for (const f of c.flags) w.text(f.code);
          }
          return hex(await sha(w.result()));
        }

        """#
}

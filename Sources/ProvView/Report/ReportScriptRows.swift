extension ReportScript {
    /// The report page's checks (Specs/view.md §8.3, §8.5): every row against the entries its receipts prove and
    /// what they give, the frontier against its signed checkpoints, the digest against the report's content.
    static let reportRows = #"""
        const duration = (ms) => { const n = (v, u) => v + ' ' + u + (v === 1 ? '' : 's');
          return ms < 1000 ? 'less than a second' : ms < 120000 ? n(Math.floor(ms / 1000), 'second') : ms < 7200000 ? n(Math.floor(ms / 60000), 'minute')
            : ms < 172800000 ? n(Math.floor(ms / 3600000), 'hour') : n(Math.floor(ms / 86400000), 'day'); };
        const classes = { lawful: 'Lawful', violation: 'Violation', 'propagation-lag': 'Propagation lag' };
        // Why a finding is what it is (Labels.why).
        function why(g, f) {
          const who = company(f.org), purpose = code(g.purpose || (f.purposes || [])[0] || '').toLowerCase();
          const causes = { withdrawn: 'you had withdrawn your consent for ' + purpose, refused: 'you had refused consent for ' + purpose,
            revoked: 'the consent for ' + purpose + ' had been revoked', expired: 'your consent for ' + purpose + ' had expired',
            objected: 'you had objected to ' + purpose, invalidated: 'the consent for ' + purpose + ' had been invalidated',
            requested: 'your consent for ' + purpose + ' had been asked for but not given', 'not-recipient': 'your consent for ' + purpose + ' did not cover ' + who };
          const what = g.cause !== null && own(causes, g.cause) ? causes[g.cause] : 'it had no consent from you for ' + purpose;
          let s = g.classification === 'lawful' ? 'Your consent for ' + codes(f.purposes).toLowerCase() + ' was in force.'
            : g.classification === 'violation' ? who + ' contacted you although its own records showed that ' + what + '.'
            : what[0].toUpperCase() + what.slice(1) + (g.lagMs !== null ? ' ' + duration(g.lagMs) + ' earlier' : ' shortly before') + ', but the news had not yet reached ' + who + '.';
          const named = refLabel(f.consentRef);
          const flags = { 'not-in-force': 'was no longer in force', 'other-person': 'is about another person', 'other-purpose': 'is for other purposes',
            'not-for-actor': 'does not cover ' + who, unresolved: 'is not in the logs this report covers' };
          // §8.5: for another person's consent the report cannot show whether it was in force; the words say so.
          if (g.flags.includes('other-person')) flags['not-in-force'] += ', as the report says (a report cannot show this for another person\'s consent)';
          for (const flag of g.flags) s += own(flags, flag) ? ' The consent it named (' + named + ') ' + flags[flag] + '.' : ' What it named as consent (' + named + ') is not a consent entry that matches.';
          return s;
        }
        // What the acting company had seen (Labels.seen).
        function seen(knew, w, by, g, f) {
          let s = knew.length ? 'It had seen ' + knew.map((c) => company(c.org) + '\u2019s records up to ' + c.org + '/' + c.seq + ' (cited in ' + refLabel(c.by.ref) + ')').join('; ') + '.'
            : 'It had cited none of the other companies\u2019 records.';
          if (w && w.org !== f.org) {
            if (g.classification === 'violation' && by) s += ' Its record ' + refLabel(by.ref) + ' already cited ' + refLabel(w) + '.';
            else if (by) s += ' Its record ' + refLabel(by.ref) + ' first cited ' + refLabel(w) + ', ' + duration(g.seenAfterMs) + ' after ' + refLabel(w) + ' was recorded.';
            else s += ' None of its records cites ' + refLabel(w) + ' yet.';
          }
          return s;
        }

        // The signed checkpoints of the frontier, then every receipt, which must be against one of them.
        const frontierCheckpoints = new Map();
        for (const c of data.checkpoints || []) {
          if (frontierCheckpoints.has(c.org)) continue;
          const p = checkpoint(c.checkpoint).then((cp) => { if (cp.org !== c.org) throw new Error('the checkpoint listed for ' + c.org + ' is another log\u2019s'); return cp; });
          p.catch(() => {});
          frontierCheckpoints.set(c.org, p);
        }
        const proven = new Map();
        for (const x of data.receipts) {
          const p = receipt(x.receipt).then(async (r) => {
            const f = r.facts;
            if (f.ref.org !== x.ref.org || String(f.ref.seq) !== String(x.ref.seq) || f.ref.leaf !== x.ref.leaf) throw new Error('the receipt proves another entry');
            const cp = frontierCheckpoints.get(f.org);
            if (!cp) throw new Error('the report carries no signed checkpoint of ' + f.org);
            const c = await cp;
            if (c.size !== r.checkpoint.size || !same(c.root, r.checkpoint.root)) throw new Error('the receipt is not against the report\u2019s signed checkpoint of ' + f.org);
            return r;
          });
          p.catch(() => {});
          proven.set(x.ref.org + '/' + x.ref.seq, p);
        }
        const pool = (await Promise.all([...proven.values()].map((p) => p.catch(() => null)))).filter((r) => r !== null);
        const sizes = Object.create(null);
        for (const [org, p] of frontierCheckpoints) { try { sizes[org] = Number((await p).size); } catch (e) { /* that log's row says why */ } }
        const refs = new Set(data.refs);
        const D = derivation(pool, refs, sizes);
        const atMs = Date.parse(data.at);
        const key = (r) => r.org + '/' + r.seq;
        const derivedConsents = new Map();
        for (const p of D.replay(D.consentsOf(refs, null))) if (p.decidedBy !== null) derivedConsents.set(p.controller + ' ' + p.purpose, p);
        const derivedLinks = D.links(refs, null);
        const component = data.refs.length ? D.person(data.refs[0], null) : new Set();
        const consentRows = new Set(data.consents.map((c) => c.controller + ' ' + c.purpose));
        const linkRows = new Set(data.links.map((l) => [...l.refs].sort().join(' ')));
        const findingRows = new Set(data.compliance.map((c) => key(c.interaction)));
        const unlisted = new Map((data.unlisted || []).map((u) => [key(u.interaction), u]));
        const inTimeline = new Set(data.timeline.map((t) => key(t.ref)));

        const entryOf = async (r) => {
          const p = proven.get(key(r));
          if (!p) throw new Error('there is no receipt for ' + refLabel(r));
          const x = await p;
          if (x.facts.ref.leaf !== r.leaf) throw new Error(refLabel(r) + ' is cited with another hash');
          return x;
        };
        const deciding = async (d) => {
          const x = await entryOf(d.ref), f = x.facts;
          if (f.hlc !== d.hlc || f.occurredAt !== d.occurredAt || (d.event || undefined) !== f.event) throw new Error(refLabel(d.ref) + ' is not shown as recorded');
          return x;
        };
        // Each citation: an entry of the interaction's log, at or before it, whose references reach that seq.
        async function knew(list, f) {
          if (!Array.isArray(list)) throw new Error('what the company had seen is not listed');
          for (const c of list) {
            const by = await deciding(c.by);
            if (by.facts.org !== f.org || by.facts.ref.seq > f.ref.seq || by.cites[c.org] !== c.seq) throw new Error(refLabel(c.by.ref) + ' does not show what ' + company(f.org) + ' had seen');
          }
        }
        async function item(c, who) {
          const f = (await entryOf(c.ref)).facts;
          const { sharedIn, ...shown } = c;
          if (canon(shown) !== canon(f)) {
            const k = [...new Set([...Object.keys(shown), ...Object.keys(f)])].sort().find((k) => canon(shown[k]) !== canon(f[k]));
            const say = (v) => v === undefined ? 'nothing' : '\u201c' + (typeof v === 'object' ? canon(v) : v) + '\u201d';
            throw new Error('the ' + k + ' shown (' + say(shown[k]) + ') is not what the signed entry says (' + say(f[k]) + ')');
          }
          if (who && !f.subjects.some((s) => who.has(s))) throw new Error('the entry is about none of your identifiers in this report');
          return f;
        }
        const itemCells = (f) => ({ when: when(f.recordedAt), company: company(f.org), channel: label(channels, f.channel), what: what(f), agent: agent(f),
          basis: f.legalBasis ? code(f.legalBasis) : '\u2014', relied: refLabel(f.consentRef), entry: refLabel(f.ref) });

        // Each row: the fact it claims, checked against the proven entries and what they give; then each cell.
        const checks = {
          async timeline(c) {
            const f = await item(c, refs), e = D.entry(f.org, f.ref.seq);
            if (f.kind === 'consent') for (const p of derivedConsents.values())
              if (p.decidedBy === e && !consentRows.has(p.controller + ' ' + p.purpose)) throw new Error('the report leaves out the consent status this entry decides (' + code(p.purpose) + ')');
            if (f.kind === 'link' || f.kind === 'unlink') for (const [k, l] of derivedLinks)
              if (l === e && !linkRows.has(k)) throw new Error('the report leaves out the identity link this entry decides');
            if (f.kind === 'interaction') {
              const g = D.classify(e, D.knownCited(f.org, f.ref.seq), []);
              const listed = findingRows.has(key(f.ref));
              if (g.listed && !listed) throw new Error('the report leaves out this contact\u2019s compliance finding (' + label(classes, g.classification) + ')');
              if (!listed) {
                if (!unlisted.has(key(f.ref))) throw new Error('the report neither gives this contact\u2019s finding nor lists it among those with none');
                await knew(unlisted.get(key(f.ref)).knew, f);
              }
            }
            return itemCells(f);
          },
          async shares(c) {
            const f = await item(c, refs);
            return { when: when(f.recordedAt), company: company(f.org), recipient: company(f.recipient), categories: codes(f.dataCategories), purposes: codes(f.purposes), entry: refLabel(f.ref) };
          },
          async context(c) { return itemCells(await item(c, null)); },
          async consents(c) {
            const f = (await deciding(c.decidedBy)).facts;
            const p = derivedConsents.get(c.controller + ' ' + c.purpose);
            if (!p) throw new Error('your consent records give no status for this company and purpose');
            if (key(p.decidedBy.f.ref) !== key(f.ref)) throw new Error('the status is decided by ' + refLabel(p.decidedBy.f.ref) + ', not ' + refLabel(f.ref));
            const grant = p.grant ? p.grant.f : null;
            const expected = { state: D.effective(p, atMs), recorded: p.status, grant: grant ? grant.ref : null, expiresAt: grant && p.expiresAt ? iso(p.expiresAt) : null,
              recipients: grant ? grant.recipients || [] : [], eventsApplied: p.applied, eventsIgnored: p.ignored };
            for (const k of Object.keys(expected)) if (canon(c[k]) !== canon(expected[k])) throw new Error('its ' + k + ' is not what your consent records give');
            return { controller: company(c.controller), purpose: code(c.purpose), state: states[expected.state], since: when(f.recordedAt),
              expires: expected.expiresAt ? when(expected.expiresAt) : '\u2014', recipients: companies(expected.recipients), entry: refLabel(f.ref) };
          },
          async compliance(c) {
            const f = (await entryOf(c.interaction)).facts;
            if (f.kind !== 'interaction' || c.org !== f.org || c.subject !== f.subjects[0] || c.channel !== f.channel || c.legalBasis !== f.legalBasis
                || canon(c.purposes) !== canon(f.purposes) || c.hlc !== f.hlc || c.occurredAt !== f.occurredAt || (c.onBehalfOf || undefined) !== (f.agent && f.agent.onBehalfOf))
              throw new Error('the contact shown differs from the signed entry');
            const shownDeciding = [];
            for (const d of c.deciding) shownDeciding.push((await deciding(d)).facts.ref);
            const e = D.entry(f.org, f.ref.seq);
            if (!inTimeline.has(key(f.ref)) || !e) throw new Error('the contact is not in the report\u2019s timeline');
            await knew(c.knew, f);
            const g = D.classify(e, D.knownCited(f.org, f.ref.seq), c.flags.map((x) => x.code));
            if (!g.listed) throw new Error('it neither relied on consent, nor met an objection, nor named a consent: it is not a finding');
            if (c.classification !== g.classification) throw new Error('the report says \u201c' + label(classes, c.classification) + '\u201d; the signed records it carries give \u201c' + label(classes, g.classification) + '\u201d');
            for (const k of ['purpose', 'cause', 'lagMs']) if (canon(c[k]) !== canon(g[k])) throw new Error('its ' + k + ' is not what the signed records it carries give');
            if (canon(shownDeciding) !== canon(g.deciding.map((d) => d.f.ref))) throw new Error('the records that decide it are not the ones the signed records give');
            if (canon(c.flags.map((x) => x.code)) !== canon(g.flags)) throw new Error('what it says of the consent it named is not what the signed records give');
            // seenBy: when the company had seen the entry that decided (a violation: by then; a lag: later, if at all).
            const w = g.decidedBy ? g.decidedBy.f.ref : null;
            let by = null;
            g.seenAfterMs = null;
            if (c.seenBy !== null && c.seenBy !== undefined) {
              if (!w || w.org === f.org) throw new Error('it names an entry that decided nothing');
              by = (await deciding(c.seenBy)).facts;
              const reached = D.knownCited(f.org, by.ref.seq)[w.org];
              if (by.org !== f.org || reached === undefined || reached < w.seq || (by.ref.seq <= f.ref.seq) !== (g.classification === 'violation'))
                throw new Error(refLabel(by.ref) + ' does not show when ' + company(f.org) + ' had seen ' + refLabel(w));
              if (g.classification !== 'violation') g.seenAfterMs = Math.max(0, Number(by.hlc.split('.')[0]) - g.decidedBy.wall);
            } else if (w && w.org !== f.org && g.classification === 'violation') throw new Error('it does not show that ' + company(f.org) + ' had seen ' + refLabel(w));
            if (canon(c.seenAfterMs === undefined ? null : c.seenAfterMs) !== canon(g.seenAfterMs)) throw new Error('its seenAfterMs is not what the signed records give');
            return { when: when(f.recordedAt), company: company(f.org), what: what(f), finding: label(classes, g.classification), why: why(g, f), seen: seen(c.knew, w, by, g, f) };
          },
          async refs(r) {
            if (!component.has(r)) throw new Error('this identifier is not linked to the others by the report\u2019s link records');
            return { ref: r };
          },
          async links(c) {
            const f = (await deciding(c.decidedBy)).facts;
            const pair = [...c.refs].sort().join(' '), l = derivedLinks.get(pair);
            if (c.refs.length !== 2 || !l || key(l.f.ref) !== key(f.ref) || f.kind !== (c.linked ? 'link' : 'unlink')) throw new Error('the link shown is not what the signed link records give');
            if (c.linked && !c.refs.every((r) => refs.has(r))) throw new Error('it links an identifier that the report\u2019s list of your identifiers leaves out');
            return { refs: f.subjects.join(' \u2194 '), linked: c.linked ? 'Linked' : 'Unlinked', entry: refLabel(f.ref) };
          },
          async frontier(c) {
            const p = frontierCheckpoints.get(c.org);
            if (!p) throw new Error('the report carries no signed checkpoint of this log');
            const cp = await p;
            if (BigInt(c.size) !== cp.size || c.root !== btoa(String.fromCharCode(...cp.root)) || c.rootHex !== hex(cp.root))
              throw new Error('the log\u2019s signed checkpoint is of size ' + cp.size + ' and root ' + btoa(String.fromCharCode(...cp.root)) + ', not these');
            return { log: company(c.org), size: String(c.size), root: c.root };
          },
          async digest(d) {
            const computed = await viewDigest();
            if (computed !== d) throw new Error('the report\u2019s content gives the digest ' + computed);
            return { digest: d };
          },
          // The keys the checks above used, as the page lists them: what a reader compares with the published keys
          // is what was checked with.
          async keys(m) { return { company: m.name + ' (' + m.org + ')', key: m.verifierKey }; },
          // The time every consent state above is for (view.md §8.2 `at`): an RFC 3339 time, shown as it is.
          async at(a) {
            if (typeof a !== 'string' || !/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$/.test(a) || isNaN(Date.parse(a)))
              throw new Error('the report\u2019s time is not an RFC 3339 time');
            return { at: when(a) };
          },
        };
        const counts = { digest: 1, at: 1, keys: data.consortium.members.length };
        for (const s of ['timeline', 'shares', 'context', 'consents', 'compliance', 'refs', 'links', 'frontier']) counts[s] = (data[s] || []).length;
        const { ok, failed, problems } = await markRows(checks, (section, i) => section === 'digest' ? data.digest : section === 'at' ? data.at : section === 'keys' ? data.consortium.members[i] : (data[section] || [])[i], counts);
        const summary = document.getElementById('summary');
        const total = ok + failed;
        summary.className = 'summary ' + (failed === 0 ? 'ok' : 'no');
        document.getElementById('summary-title').textContent = failed === 0
          ? '\u2713 All ' + total + ' facts in this report are verified'
          : '\u2717 ' + failed + ' of ' + total + ' facts could not be verified';
        document.getElementById('summary-detail').textContent = failed === 0
          ? 'Each record is in the signed log of the company that recorded it, exactly as shown, and every status and finding follows from those records. Checked in your browser just now, with the keys listed at the end. No report can prove that nothing was left out: \u201cWhat a report cannot prove\u201d, below, says how to check that.'
          : problems.join('; ') + (problems.length ? '. ' : '') + 'Rows marked \u2717 differ from what the companies signed, do not follow from it, or their proof does not check out: do not rely on them. The other ' + ok + ' are verified.';
        document.body.dataset.verification = 'done';

        """#
}

-- Consent events name a known channel, say yes or no, and have a time.
select consent_key, channel, is_opt_in, consented_at
from stg_consents
where channel not in ('email', 'sms', 'postal', 'ads')
    or is_opt_in is null
    or consented_at is null

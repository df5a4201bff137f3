-- The consent events whose stg_consents row a run may change (`touched` of its incremental
-- header, see ccv.warehouse.models.Incremental): run with the run id ($run_id) after
-- stg_customers was updated, before stg_consents is. Why not rebuild: most of stg_consents is
-- derived from the opt-in flags of CRM records (at a million customers ~1.2M events), and a
-- night changes a few thousand records. The events that can change are
--   * those of the consent files the run loaded;
--   * the flag events of the CRM records stg_customers changed tonight (its logged changes:
--     their record ids, before and after), on either channel, of every source that derives
--     consents from its flags (a record id alone may name records of two sources: both are
--     recomputed);
--   * after a change of the sources' settings (ingest_sources): every flag event of a source
--     that no longer derives them, every record of one that derives them and has none yet,
--     and every event of a consent source whose customer source is not the one its rows name.
-- Rows of a file replaced or rejected tonight are added by the framework as for every model.
with stg_consents as (
    select * from stg_consents
),

ingest_sources as (
    select * from ingest_sources
),

channels as (
    select channel from (values ('email'), ('sms')) as c(channel)
),

delivered as (
    select distinct source, consent_id
    from raw_consents
    where run_id = $run_id
),

changed_records as (
    select distinct key as source_record_id
    from model_changes
    where run_id = $run_id and model = 'stg_customers'
),

flag_sources as (
    select source from ingest_sources where consents_from_opt_in
),

changed_flags as (
    select s.source, r.source_record_id || ':' || c.channel as consent_id
    from changed_records as r
    cross join flag_sources as s
    cross join channels as c
),

flags_dropped as (
    select m.source, m.consent_id
    from stg_consents as m
    where m.method = 'crm_opt_in_flag'
        and m.source not in (select source from flag_sources)
),

flags_added as (
    select c.source, c.source_record_id || ':' || ch.channel as consent_id
    from stg_customers as c
    cross join channels as ch
    where c.source in (select source from flag_sources)
        and c.source not in (
            select source from stg_consents where method = 'crm_opt_in_flag'
        )
),

renamed as (
    select m.source, m.consent_id
    from stg_consents as m
    left join ingest_sources as s
        on s.source = m.source
    where m.method is distinct from 'crm_opt_in_flag'
        and m.customer_source is distinct from s.customer_source
)

select source, consent_id from delivered
union
select source, consent_id from changed_flags
union
select source, consent_id from flags_dropped
union
select source, consent_id from flags_added
union
select source, consent_id from renamed

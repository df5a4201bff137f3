-- The identity record of a transaction's identifiers (an order, a survey answer, a consent
-- event): '~' and the md5 of its identifier tuple, one key per source and tuple
-- (ccv.identity.resolve gathers one identity record per key); NULL without any identifier
-- (an anonymous transaction). One definition for every staging model that keys transactions:
-- the same identifiers must give the same key in each of them.
create or replace macro identity_record_key(email, phone, loyalty_id, customer_record_id) as
    case when coalesce(email, phone, loyalty_id, customer_record_id) is not null
        then '~' || md5(concat_ws('|', coalesce(lower(trim(email)), ''),
            coalesce(trim(phone), ''), coalesce(trim(loyalty_id), ''),
            coalesce(customer_record_id, '')))
    end

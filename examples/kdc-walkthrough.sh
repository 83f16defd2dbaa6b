# The AS (as in docs/ace.md, with as-credentials.json naming alice and bob), the KDC and a broker.
coapsec as --config kdc-as.json --credentials as-credentials.json --bind 127.0.0.1:5688 &
coapsec kdc --config kdc-config.json --bind 127.0.0.1:5690 -v &
coapsec broker --bind 127.0.0.1:5691 &
for i in $(seq 50); do coapsec ping coap://127.0.0.1:5688 && coapsec ping coap://127.0.0.1:5690 && coapsec ping coap://127.0.0.1:5691 && break; sleep 0.2; done

# Alice (publish only) creates the topic and publishes, protected with keys from the KDC.
# --credentials holds her context with the AS; the broker is reached without OSCORE here.
kdc="--kdc coap://127.0.0.1:5690/ace-group/kitchen --ace-as coap://127.0.0.1:5688/token --allow-unprotected"
data=$(coapsec publish coap://127.0.0.1:5691/ps --create-topic kitchen --payload 21.5 --content-format 0 $kdc --credentials alice.json 2>&1 >/dev/null | sed -n 's/^topic-data: //p')

# Bob (read only) joins as subscriber, and reads it: verified and decrypted.
coapsec subscribe "$data" --count 1 $kdc --credentials bob.json

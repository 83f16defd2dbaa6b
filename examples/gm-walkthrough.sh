# The group, made by the offline tool; the online Group Manager takes it over at its first start.
coapsec group create lights.json --name lights

# The AS (as in docs/ace.md, with as-credentials.json naming alice and bob) and the Group Manager.
coapsec as --config gm-as.json --credentials as-credentials.json --bind 127.0.0.1:5688 &
coapsec group-manager --config gm-config.json --bind 127.0.0.1:5689 -v &
for i in $(seq 50); do coapsec ping coap://127.0.0.1:5688 && coapsec ping coap://127.0.0.1:5689 && break; sleep 0.2; done

# Alice joins as requester and responder; bob as a responder (all his token grants).
coapsec group join lights --gm coap://127.0.0.1:5689 --ace-as coap://127.0.0.1:5688/token --credentials alice.json -o alice-lights.json
coapsec group join lights --gm coap://127.0.0.1:5689 --ace-as coap://127.0.0.1:5688/token --credentials bob.json --roles responder -o bob-lights.json

# The administrator removes bob (node m2): the running Group Manager rekeys the group at once.
coapsec group-manager remove --config gm-config.json --group lights --member m2

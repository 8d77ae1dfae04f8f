-- One database per service: each service owns its store and reaches no other's.
CREATE DATABASE msa_user;
CREATE DATABASE msa_chat;
CREATE DATABASE msa_payment;
CREATE DATABASE msa_user_chat;
